"""TCP option values that carry host counters (timestamps, SACK edges) are masked, and a
model cannot learn a label planted only in them; the audit sees every header field."""
from __future__ import annotations

import numpy as np
import pytest
from scapy.all import IP, TCP, Raw

from classifier.audit import audit_dataset, format_audit
from classifier.build import build_from_captures
from classifier.dataset import load_dataset
from classifier.fields import dataset_fields
from classifier.masking import MaskOptions, mask_packet, tcp_option_counter_spans
from classifier.packets import parse
from classifier.preprocess import Preprocess
from tests.unit.pcap_factory import write_capture


def _tcp(payload=b"x" * 30, options=(), **kw):
    p = IP(src="10.0.0.2", dst="93.184.216.34", id=7, ttl=64) / TCP(
        sport=40000, dport=443, flags="PA", seq=123, ack=456, window=8192, options=list(options))
    return bytes(p / Raw(payload))


def test_timestamp_and_sack_values_zeroed_kinds_kept():
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (0xDEADBEEF, 0x01020304)),
            ("SAck", (1000, 2000)), ("MSS", 1460)]
    raw = _tcp(options=opts)
    pv = parse(raw)
    m = mask_packet(pv, MaskOptions())
    t = pv.ip_header_len
    opt = m[t + 20:pv.payload_offset]
    assert b"\xde\xad\xbe\xef" not in m and b"\x01\x02\x03\x04" not in m
    assert (1000).to_bytes(4, "big") not in opt and (2000).to_bytes(4, "big") not in opt
    # kinds and lengths stay; MSS (a configured value, not a counter) stays
    assert opt[:2] == b"\x01\x01" and opt[2:4] == b"\x08\x0a" and opt[4:12] == bytes(8)
    assert b"\x05\x0a" + bytes(8) in opt and b"\x02\x04\x05\xb4" in opt
    # the payload is untouched, and switching the mask off gives the bytes back
    assert m[pv.payload_offset:] == raw[pv.payload_offset:]
    kept = mask_packet(pv, MaskOptions(zero_tcp_option_counters=False))
    assert b"\xde\xad\xbe\xef" in kept


@pytest.mark.parametrize("opts", [b"\x08", b"\x08\x01", b"\x08\x20" + bytes(6), b"\x00\x08\x0a"])
def test_malformed_options_never_raise(opts):
    buf = bytes(20) + opts
    assert all(0 <= a <= b <= len(buf) for a, b in tcp_option_counter_spans(buf, 20, len(buf)))


def test_old_preprocess_files_keep_their_vectors():
    """A format-1 preprocess.json (bundles made before this mask) still reads as it was made."""
    old = Preprocess().to_dict()
    old["format_version"] = 1
    del old["mask"]["zero_tcp_option_counters"]
    assert Preprocess.from_dict(old).mask.zero_tcp_option_counters is False
    assert Preprocess().mask.zero_tcp_option_counters is True


def _planted_captures(root, n=80, seed=0):
    """Two classes whose sessions differ ONLY in their TCP timestamp and SACK values."""
    rng = np.random.default_rng(seed)
    for label, base in (("alpha", 0x11000000), ("beta", 0xA9000000)):
        pkts = []
        for s in range(n):
            t0 = 1000.0 + s
            tsval = base + int(rng.integers(0, 1 << 20))
            for i in range(4):
                d = i % 2
                src, dst = ("10.0.0.2", "93.184.216.34") if d == 0 else ("93.184.216.34", "10.0.0.2")
                sp, dp = (40000 + s, 443) if d == 0 else (443, 40000 + s)
                payload = rng.integers(0, 256, int(rng.integers(40, 90)), dtype=np.uint8).tobytes()
                opts = [("NOP", None), ("NOP", None), ("Timestamp", (tsval + i, tsval - 5 + i))]
                if i == 3:
                    opts += [("NOP", None), ("NOP", None), ("SAck", (tsval, tsval + 100))]
                p = IP(src=src, dst=dst, ttl=64) / TCP(sport=sp, dport=dp, flags="PA", seq=1 + 100 * i,
                                                       ack=1 + 100 * i, window=8192, options=opts) / Raw(payload)
                pkts.append((t0 + 0.01 * i, IP(bytes(p))))
        (root / label).mkdir(parents=True)
        write_capture(root / label / f"{label}.pcap", pkts)


def _forest_macro_f1(path):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import f1_score
    ds = load_dataset(path)
    X = ds.X.reshape(len(ds.X), -1)
    tr, te = ds.split == 0, ds.split != 0
    clf = RandomForestClassifier(n_estimators=50, random_state=0).fit(X[tr], ds.y[tr])
    return f1_score(ds.y[te], clf.predict(X[te]), average="macro")


def test_label_planted_in_tsval_cannot_be_learned(tmp_path):
    pytest.importorskip("sklearn")
    _planted_captures(tmp_path / "caps")
    common = dict(repr="kpackets", k=4, n_bytes=80)
    masked = build_from_captures(tmp_path / "caps", tmp_path / "m.npz", Preprocess(**common),
                                 jobs=1, fractions=(0.6, 0.0, 0.4), min_files=10 ** 6,
                                 progress=False).out
    leaky = build_from_captures(tmp_path / "caps", tmp_path / "l.npz",
                                Preprocess(**common, mask=MaskOptions(zero_tcp_option_counters=False)),
                                jobs=1, fractions=(0.6, 0.0, 0.4), min_files=10 ** 6,
                                progress=False).out
    # the plant is real: without the mask a forest reads it perfectly ...
    assert _forest_macro_f1(leaky) > 0.95
    # ... with the default mask nothing but chance is left (two balanced classes)
    assert _forest_macro_f1(masked) < 0.7


def test_audit_probe_reads_options_and_importance_names_tsval(tmp_path):
    """With the mask off, the probe (headers only, options included) finds the plant, and the
    permutation importance names the timestamp value as the field the model leans on."""
    pytest.importorskip("sklearn")
    _planted_captures(tmp_path / "caps", n=60)
    out = build_from_captures(tmp_path / "caps", tmp_path / "l.npz",
                              Preprocess(repr="kpackets", k=4, n_bytes=80,
                                         mask=MaskOptions(zero_tcp_option_counters=False)),
                              jobs=1, fractions=(0.6, 0.2, 0.2), min_files=10 ** 6, progress=False).out
    ds = load_dataset(out)
    names = {nm for spans in dataset_fields(ds.X, ds.preprocess) for nm, _a, _z in spans}
    assert {"tcp.opt.timestamp.value", "tcp.opt.sack.value", "tcp.window", "payload[0:8]"} <= names
    rep = audit_dataset(ds, importance=True, repeats=1, max_train=2000)
    assert rep["probe"]["macro_f1"] > 0.9
    assert "tcp.opt.timestamp.value" in rep["probe"]["varying_fields"]
    top = rep["importance"]["fields"][0]
    assert top["field"] in ("tcp.opt.timestamp.value", "tcp.opt.sack.value") and top["macro_f1_drop"] > 0.2
    assert "permutation importance" in format_audit(rep)
