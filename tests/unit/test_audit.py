"""The audit trail (issue 16): every decision, policy change, model change and restore
is a JSON line in --egw-decision-log, flushed per line (nothing lost when the process is
killed), appended across restarts, size-rotated; `egw decisions tail|grep` reads it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from classifier.preprocess import Preprocess
from egw_cli.main import main as egw
from ryu_apps import egw_flags
from ryu_apps.gateway.audit import DecisionLog, files, records, select
from ryu_apps.gateway.core import Gateway
from ryu_apps.gateway.engine import GatewayEngine
from ryu_apps.gateway.flowtable import FlowTableModel
from tests.unit.test_gateway_engine import (LAN, POLICY, WAN, FakeClassifier, policy_enforcer,
                                            run_session)
from tests.unit.test_robust_restore import _answer, _learn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_lines_are_flushed_appended_across_restarts_and_rotated(tmp_path):
    path = tmp_path / "audit" / "decisions.jsonl"
    a = DecisionLog(path, max_bytes=4096, backups=2, clock=lambda: 1.5)
    a.write("policy", ok=True, path="/x.yaml")
    # readable at once by another reader, without close: flushed per line
    assert [r["event"] for r in records(path)] == ["policy"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    # a restart: a new writer appends
    b = DecisionLog(path, max_bytes=4096, backups=2)
    b.write("model", ok=False, message="bad")
    assert [r["event"] for r in records(path)] == ["policy", "model"]
    for i in range(200):
        b.write("classified", session=i, flow="tcp 10.0.0.2:1 -> 10.0.0.1:443")
    assert all(f.stat().st_size <= 4096 for f in files(path))
    assert [f.name for f in files(path)] == ["decisions.jsonl.2", "decisions.jsonl.1",
                                             "decisions.jsonl"]
    got = [r["session"] for r in records(path) if r["event"] == "classified"]
    assert got == list(range(200))[-len(got):]          # newest kept, in order
    assert select(path, r"\"session\": 19[0-9]", last=3)[-1]["session"] == 199


def test_no_line_lost_when_the_process_is_killed(tmp_path):
    path = tmp_path / "d.jsonl"
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {REPO!r})
        from ryu_apps.gateway.audit import DecisionLog
        log = DecisionLog({str(path)!r})
        for i in range(500):
            log.write("classified", session=i)
        os.kill(os.getpid(), signal.{{}})
    """)
    for sig in ("SIGTERM", "SIGKILL"):
        path.unlink(missing_ok=True)
        p = subprocess.run([sys.executable, "-c", code.format(sig)], timeout=60)
        assert p.returncode == -getattr(signal, sig)
        assert [r["session"] for r in records(path)] == list(range(500))


def test_engine_decisions_and_restore_go_to_the_log(tmp_path):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path)
    clf = FakeClassifier("p2p")
    eng = GatewayEngine(Preprocess(repr="packet1480"), clf, policy_enforcer(), wan_port=WAN,
                        mirror_max_packets=8, clock=lambda: 0.0, dp_id=1)
    eng.audit = log.write
    sw = FlowTableModel(ports=[LAN, WAN])
    sw.apply(eng.switch_connected(fresh=True))
    _learn(sw)
    run_session(eng, sw)
    sw.apply(eng.set_enforcer(policy_enforcer(POLICY.replace("p2p: {action: drop}",
                                                             "p2p: {dscp: CS1}"))))
    (c, u) = records(path)
    assert (c["event"], c["class"], c["action"], c["dpid"]) == \
        ("classified", "p2p", "drop", "0000000000000001")
    assert c["device"] == "02:00:00:00:00:02" and c["flow"].startswith("tcp 10.0.0.2:40000")
    assert u["event"] == "policy-update" and u["action"] == "allow" and u["changes"]
    # a restarted controller: the restored session and the restore itself
    new = GatewayEngine(Preprocess(repr="packet1480"), clf, policy_enforcer(), wan_port=WAN,
                        clock=lambda: 0.0, dp_id=1)
    new.audit = DecisionLog(path).write
    msgs = new.switch_connected(fresh=True, readback=True)
    sw.apply(msgs)
    sw.apply(_answer(new, sw, msgs))
    tail = list(records(path))[2:]
    assert [r["event"] for r in tail] == ["restored", "restore"]
    assert tail[1]["sessions"] == 1 and tail[1]["result"] == "adopted"


def _conf(tmp_path, **kw):
    c = {o.dest: o.default for o in egw_flags.OPTS}
    c.update({"egw_wan_htb": False, "egw_decision_log": str(tmp_path / "d.jsonl"), **kw})
    return SimpleNamespace(**c)


def test_gateway_logs_policy_and_model_changes(tmp_path):
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY)
    gw = Gateway(_conf(tmp_path, egw_policy=str(pol)))
    pol.write_text(POLICY.replace("dscp: EF", "dscp: NOPE"))
    assert not gw.reload_policy("SIGHUP")[0]
    pol.write_text(POLICY.replace("dscp: EF", "dscp: CS5"))
    assert gw.reload_policy("rest")[0]
    gw.reload_model("file change")
    recs = list(records(tmp_path / "d.jsonl"))
    ev = [(r["event"], r["trigger"], r["ok"]) for r in recs]
    assert ev == [("model", "start", True), ("policy", "start", True),
                  ("policy", "SIGHUP", False), ("policy", "rest", True),
                  ("model", "file change", True)]
    assert "NOPE" in recs[2]["error"] and recs[3]["summary"]
    assert all(r["path"] for r in recs)


def test_unwritable_log_does_not_stop_the_gateway(tmp_path):
    (tmp_path / "f").write_text("")
    gw = Gateway(_conf(tmp_path, egw_decision_log=str(tmp_path / "f" / "d.jsonl")))
    assert gw.faults.count("audit") == 1
    gw.audit.write("policy", ok=True)               # a no-op


def test_cli_tail_and_grep(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path)
    for i in range(30):
        log.write("classified", session=i, **{"class": "p2p" if i % 3 == 0 else "voip"})
    log.write("policy", ok=False, error="x.yaml:3: unknown DSCP 'NOPE'")
    assert egw(["decisions", "tail", "--log", str(path), "-n", "2"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["event"] for r in out] == ["classified", "policy"] and out[0]["session"] == 29
    assert egw(["decisions", "grep", "--log", str(path), "-e", "class=p2p"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["session"] for r in out] == list(range(0, 30, 3))
    assert egw(["decisions", "grep", "--log", str(path), "NOPE"]) == 0
    assert json.loads(capsys.readouterr().out)["event"] == "policy"
    assert egw(["decisions", "tail", "--log", str(tmp_path / "none.jsonl")]) == 2
    assert "no such decision log" in capsys.readouterr().err
