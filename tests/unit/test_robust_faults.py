"""Faults at runtime and bad files.

- Classifier failure (inference raises, model gone, no model): sessions fall back to
  the ``unknown`` (default) policy and keep being forwarded; the error is logged and
  counted once per cause, not per packet or per batch.
- Bad files: a corrupt model bundle, a policy with errors, an unreadable pcap each
  give a clear message naming the file; the running model and policy are kept.
"""
from __future__ import annotations

import functools
import json
import logging
import shutil

import pytest

from classifier.bundle import DEFAULT_BUNDLE_DIR, load_bundle
from classifier.pcapio import PcapError, read_frames
from classifier.preprocess import Preprocess
from policies.enforcement import enforcement_for
from policies.errors import PolicyError
from policies.reload import PolicyHolder
from ryu_apps.gateway.engine import GatewayEngine
from ryu_apps.gateway.faults import FaultLog
from ryu_apps.gateway.flowtable import FlowTableModel
from ryu_apps.gateway.model import ModelHolder
from tests.unit.test_gateway_engine import (LAN, POLICY, WAN, frame, pkt_fields,
                                            policy_enforcer)


def _engine(classify, preprocess=None):
    eng = GatewayEngine(preprocess or Preprocess(repr="packet1480", layers="l7", n_bytes=64),
                        classify, policy_enforcer(), wan_port=WAN, clock=lambda: 0.0)
    sw = FlowTableModel(ports=[LAN, WAN])
    sw.apply(eng.switch_connected(fresh=True))
    return eng, sw


def _sessions(eng, sw, n, sport0=20000, batch=1):
    """n UDP sessions with payload, classified ``batch`` at a time."""
    for i in range(n):
        sw.apply(eng.mirror_packet(LAN, frame(sport=sport0 + i, dport=5000, proto=17,
                                              payload=b"VOIP" + bytes(40)), now=0))
        if (i + 1) % batch == 0:
            sw.apply(eng.flush(0.01))
    sw.apply(eng.flush(0.01))


def _errors(eng, kind):
    return eng.metrics.errors.labels(kind)._value.get()


def _repeats(eng, kind):
    return eng.metrics.error_repeats.labels(kind)._value.get()


class Exploding:
    def __init__(self, exc):
        self.exc = exc
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        raise self.exc


# ---- classifier failure ---------------------------------------------------------------

def test_inference_raising_falls_back_to_unknown_logged_and_counted_once(caplog):
    clf = Exploding(RuntimeError("tensor 7 has 3 dims, expected 2"))
    eng, sw = _engine(clf)
    with caplog.at_level(logging.WARNING):
        _sessions(eng, sw, 60, batch=1)          # 60 batches, 60 failures
    assert clf.calls == 60
    views = eng.sessions()
    assert len(views) == 60
    assert all(s["class"] == "unknown" and s["reason"] == "error" and s["state"] == "enforced"
               and s["policy_entry"] == "default" and s["action"] == "allow" for s in views)
    # the unknown (default) policy is installed: forwarded, no longer mirrored
    v = sw.process(pkt_fields(sport=20005, dport=5000, proto=17))
    rule = v.rules[0]
    assert rule.priority == 100 and rule.goto == 1 and not rule.is_drop
    assert not v.mirrored and v.dscp == 0 and 1 in v.to_controller   # on to L2 forwarding
    # once per cause: one error, 59 repeats, one log line
    assert _errors(eng, "classifier") == 1 and _repeats(eng, "classifier") == 59
    lines = [r for r in caplog.records if "classifier" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR
    assert "tensor" in lines[0].getMessage()
    assert eng.faults.count("classifier") == 60


def test_distinct_causes_are_each_logged_once(caplog):
    eng, sw = _engine(Exploding(RuntimeError("boom")))
    with caplog.at_level(logging.WARNING):
        _sessions(eng, sw, 5, sport0=1000)
        eng.classify = Exploding(ValueError("bad shape"))
        _sessions(eng, sw, 5, sport0=2000)
        eng.classify = lambda b: [("voip", 0.9)]        # wrong length: another cause
        _sessions(eng, sw, 6, sport0=3000, batch=2)
    assert _errors(eng, "classifier") == 3
    assert _repeats(eng, "classifier") == 4 + 4 + 2
    assert len([r for r in caplog.records if "classifier" in r.getMessage()]) == 3


def test_policy_lookup_failure_and_preprocess_failure_fall_back(caplog):
    calls = []

    def enforce(label, mac, ip, confidence=None):
        calls.append(label)
        if label != "unknown":
            raise KeyError(label)
        return enforcement_for(__import__("policies.loader", fromlist=["x"]).parse_policy(
            POLICY), "unknown", mac, ip)

    eng, sw = _engine(lambda b: [("voip", 0.9)] * len(b))
    eng.enforce = enforce
    _sessions(eng, sw, 10)
    assert all(s["action"] == "allow" and s["policy_entry"] == "default"
               for s in eng.sessions())
    assert _errors(eng, "policy") == 1 and _repeats(eng, "policy") == 9

    class BadPP(Preprocess):
        def vectorize_views(self, views):
            raise IndexError("list index out of range")

    eng2, sw2 = _engine(lambda b: [("voip", 0.9)] * len(b),
                        preprocess=BadPP(repr="packet1480", layers="l7", n_bytes=64))
    _sessions(eng2, sw2, 10)
    assert {s["reason"] for s in eng2.sessions()} == {"error"}
    assert _errors(eng2, "preprocess") == 1 and _repeats(eng2, "preprocess") == 9


@pytest.fixture
def bundle_dir(tmp_path):
    d = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, d)
    return d


def test_model_file_disappears_keeps_last_good_then_no_model_is_unknown(bundle_dir):
    holder = ModelHolder(bundle_dir)
    assert holder.load()[0]
    good = holder.current
    eng, sw = _engine(holder.classify, preprocess=holder.preprocess)
    for f in ("model.int8.tflite", "model.tflite"):
        (bundle_dir / f).unlink()
    assert holder.changed_on_disk()
    ok, msg = holder.load()
    assert not ok and "model.tflite" in msg and str(bundle_dir) in msg
    assert "keeping the running model" in msg
    assert holder.current is good and holder.last_error
    # the running interpreter lives in memory: sessions are still classified
    _sessions(eng, sw, 3)
    sw.apply(eng.tick(10.0))                   # kpackets wants 8 packets: time cap
    assert [s["reason"] for s in eng.sessions()] == ["cap"] * 3
    assert eng.counters["errors"] == 0
    # started without any good bundle: no model, every session unknown, one error
    empty = ModelHolder(bundle_dir)
    assert not empty.load()[0] and empty.current is None
    eng2, sw2 = _engine(empty.classify, preprocess=Preprocess(repr="packet1480"))
    _sessions(eng2, sw2, 8)
    assert {s["class"] for s in eng2.sessions()} == {"unknown"}
    assert _errors(eng2, "classifier") == 1 and _repeats(eng2, "classifier") == 7


def test_real_bundle_inference_raising_is_unknown(bundle_dir):
    b = load_bundle(bundle_dir)

    def broken(x):
        raise RuntimeError("Invoke failed: node 3")

    b._runner.run = broken
    eng, sw = _engine(b.classify, preprocess=b.preprocess)
    for i in range(4):
        for j in range(8):          # enough payload packets for the kpackets model
            sw.apply(eng.mirror_packet(LAN, frame(sport=9000 + i, proto=17,
                                                  payload=bytes([j]) * 60), now=0))
    sw.apply(eng.flush(0.01))
    sw.apply(eng.tick(10.0))
    assert {s["class"] for s in eng.sessions()} == {"unknown"}
    assert _errors(eng, "classifier") == 1


# ---- bad files ---------------------------------------------------------------------------

CORRUPTIONS = {
    "model.int8.tflite": lambda p: p.write_bytes(b"TFL3 this is not a flatbuffer" * 10),
    "labels.json": lambda p: p.write_text("[\"voip\", "),
    "preprocess.json": lambda p: p.write_text(json.dumps({"repr": "nonsense"})),
    "card.json": lambda p: p.write_text(json.dumps({"threshold": "high"})),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_bundle_named_and_last_good_kept(bundle_dir, name):
    holder = ModelHolder(bundle_dir)
    assert holder.load()[0]
    good = holder.current
    CORRUPTIONS[name](bundle_dir / name)
    assert holder.changed_on_disk()
    ok, msg = holder.reload_if_changed()
    assert not ok and str(bundle_dir / name) in msg, msg
    assert holder.current is good and holder.last_error and name in holder.last_error
    assert holder.classify(good.preprocess.vectorize([])[:0]) == []   # still usable
    # fixed again: reloaded
    shutil.copy(DEFAULT_BUNDLE_DIR / name, bundle_dir / name)
    ok, _ = holder.reload_if_changed()
    assert ok and holder.current is not good and holder.last_error is None


def test_model_file_rewritten_in_place_keeps_the_running_model(bundle_dir):
    """A new bundle copied over the running one's files (truncated, then rewritten in
    place): the running interpreter holds its own copy of the model, so inference goes on
    (a memory-mapped file would end the process with SIGBUS)."""
    import numpy as np

    holder = ModelHolder(bundle_dir)
    assert holder.load()[0]
    f = holder.current.model_file
    data = f.read_bytes()
    x = np.zeros((2, *holder.current._runner.feature_shape), np.float32)
    before = holder.classify(x)
    f.write_bytes(data[:len(data) // 3])
    assert holder.classify(x) == before
    ok, msg = holder.reload_if_changed()
    assert not ok and str(f) in msg and holder.classify(x) == before


def test_labels_count_mismatch_is_named(bundle_dir):
    (bundle_dir / "labels.json").write_text(json.dumps(["a", "b"]))
    holder = ModelHolder(bundle_dir)
    ok, msg = holder.load()
    assert not ok and "labels.json" in msg and "model.int8.tflite" in msg


def test_policy_with_errors_named_and_running_policy_kept(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    holder = PolicyHolder(p)
    good = holder.current
    eng, sw = _engine(lambda b: [("streaming", 0.9)] * len(b))
    eng.set_enforcer(functools.partial(enforcement_for, holder.current))
    p.write_text(POLICY.replace("kbps: 5000", "kbps: -5"))
    res = holder.reload()
    assert res.error and str(p) in res.error and "rate_limit" in res.error
    assert ":" in res.error.split(str(p))[1][:4]          # file:line
    assert holder.current is good and holder.last_error == res.error
    _sessions(eng, sw, 2)
    assert {s["rate_kbps"] for s in eng.sessions()} == {5000}
    with pytest.raises(PolicyError) as ei:
        PolicyHolder(tmp_path / "missing.yaml")
    assert "missing.yaml" in str(ei.value)


@pytest.mark.parametrize("content,words", [
    (b"", "empty file"),
    (b"\xd4\xc3", "too short"),
    (b"GIF89a not a capture at all", "not a pcap"),
    (b"\xd4\xc3\xb2\xa1" + b"\x02\x00\x04\x00" + bytes(8), "truncated pcap file header"),
    (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(8) + b"\xff\xff\x00\x00\x01\x00\x00\x00"
     + b"\x01\x00\x00\x00\x02\x00\x00\x00\x50\x00\x00\x00\x50\x00\x00\x00" + b"x" * 10,
     "truncated at byte 24 (packet:"),
])
def test_unreadable_pcap_named(tmp_path, content, words):
    p = tmp_path / "capture.pcap"
    p.write_bytes(content)
    with pytest.raises(PcapError) as ei:
        list(read_frames(p, strict=True))
    assert str(p) in str(ei.value) and words in str(ei.value)
    assert getattr(ei.value, "user_facing", False)


def test_pcap_that_is_a_directory_or_missing_is_named(tmp_path):
    for p in (tmp_path, tmp_path / "nope.pcap"):
        with pytest.raises(PcapError) as ei:
            list(read_frames(p))
        assert str(p) in str(ei.value) and "cannot read" in str(ei.value)


# ---- the fault log itself ---------------------------------------------------------------

def test_fault_log_bounded_and_numbers_ignored(caplog):
    fl = FaultLog(max_causes=3)
    with caplog.at_level(logging.ERROR, logger="egw.faults"):
        for i in range(100):
            fl.report("x", RuntimeError(f"batch of {i} failed at 0x{i:x}"))
        for i in range(10):
            fl.report("y", f"cause {chr(65 + i)}")
    assert fl.causes[("x", "RuntimeError: batch of N failed at N")].count == 100
    assert len(fl.causes) == 3 and fl.overflow == 8
    assert len(caplog.records) == 3
    assert fl.report("z", "whatever", cause="t=1") is False      # table full: counted only
