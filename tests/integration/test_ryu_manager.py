"""The patched Ryu 4.34: ryu-manager starts and its WSGI layer answers."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from topologies.controller import RyuProcess

APPS = Path(__file__).parent / "apps"


def test_ryu_manager_version():
    exe = Path(sys.executable).parent / "ryu-manager"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "4.34" in out.stdout + out.stderr


@pytest.mark.timeout(60)
def test_wsgi_controller_registers_and_answers(tmp_path):
    with RyuProcess(apps=[str(APPS / "wsgi_probe.py")], log_path=tmp_path / "ryu.log",
                    wait_for="ws") as ryu:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{ryu.rest_url}/probe/egw", timeout=2) as resp:
                    body = json.loads(resp.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("WSGI probe never answered:\n" + ryu.log_tail())
                time.sleep(0.2)
        assert body == {"hello": "egw", "ryu": "ok"}
    assert "ImportError" not in ryu.log_tail(200)
