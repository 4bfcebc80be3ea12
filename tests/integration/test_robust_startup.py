"""Start-up with bad files: the real ryu-manager names each file and keeps running.

A corrupt model bundle: the gateway runs without a model (every session `unknown`, the
default policy). A policy with errors: it runs the embedded policy and reports the file;
once the file is fixed, the watcher loads it.
"""
from __future__ import annotations

import json
import shutil
import time
import urllib.request

import pytest

from classifier.bundle import DEFAULT_BUNDLE_DIR
from policies import DEFAULT_POLICY_PATH
from topologies.controller import RyuProcess


def _get(ryu, path):
    req = urllib.request.Request(ryu.rest_url + path,
                                 headers={"Authorization": f"Bearer {ryu.token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _wait(pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


@pytest.mark.timeout(90)
def test_bad_model_and_bad_policy_at_startup(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, bundle)
    (bundle / "model.int8.tflite").write_bytes(b"not a flatbuffer")
    (bundle / "model.tflite").write_bytes(b"not a flatbuffer")
    policy = tmp_path / "policy.yaml"
    good = open(DEFAULT_POLICY_PATH).read()
    policy.write_text(good.replace("dscp: AF21", "dscp: AF99", 1))   # unknown DSCP name
    args = ["--egw-model", str(bundle), "--egw-policy", str(policy),
            "--egw-policy-watch", "0.3", "--egw-model-watch", "0.3", "--noegw-wan-htb"]
    with RyuProcess(extra_args=args, log_path=tmp_path / "ryu.log") as ryu:
        assert _wait(lambda: _get(ryu, "/egw/health")["ok"]), ryu.log_tail()
        health = _get(ryu, "/egw/status")
        assert health["model"] is None and health["labels"] == []
        pol = _get(ryu, "/egw/policy")
        assert "AF99" in (pol["last_error"] or "") and str(policy) in pol["last_error"]
        log = ryu.log_tail(200)
        assert "model.int8.tflite" in log or str(bundle) in log, log
        assert str(policy) in log and "AF99" in log, log
        # Fix the policy: the watcher loads it, the error clears.
        policy.write_text(good)
        assert _wait(lambda: _get(ryu, "/egw/policy")["last_error"] in (None, "")), \
            ryu.log_tail()
        # Fix the model: the watcher loads it.
        for f in ("model.tflite", "model.int8.tflite"):
            shutil.copy(DEFAULT_BUNDLE_DIR / f, bundle / f)
        assert _wait(lambda: _get(ryu, "/egw/status")["labels"] != []), ryu.log_tail()
        assert ryu.proc.poll() is None
    assert "Traceback" not in ryu.log_tail(400)
