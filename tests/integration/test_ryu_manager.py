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


@pytest.mark.timeout(90)
def test_rest_closes_a_silent_client_after_the_socket_timeout(tmp_path):
    """The gateway app sets Ryu's WSGI socket timeout (patches/ryu-4.34-wsgi-socket-timeout
    .patch, --egw-api-socket-timeout): a client that sends half a request and goes silent
    is disconnected after the timeout, while a second client is answered meanwhile."""
    import socket

    with RyuProcess(extra_args=["--egw-api-socket-timeout", "1.5"],
                    log_path=tmp_path / "ryu.log", wait_for="ws") as ryu:
        slow = socket.create_connection(("127.0.0.1", ryu.ws_port), timeout=10)
        slow.sendall(b"GET /egw/health HTTP/1.1\r\nHost: x\r\n")      # no blank line: unfinished
        t0 = time.monotonic()
        with urllib.request.urlopen(f"{ryu.rest_url}/egw/health", timeout=5) as resp:
            assert json.loads(resp.read())["ok"] in (True, False)    # others are served
        try:
            closed = slow.recv(1024) == b""
        except (ConnectionResetError, TimeoutError, socket.timeout) as exc:
            closed = not isinstance(exc, (TimeoutError, socket.timeout))
        waited = time.monotonic() - t0
        slow.close()
        assert closed and 1.0 <= waited <= 8.0, (closed, waited, ryu.log_tail())
