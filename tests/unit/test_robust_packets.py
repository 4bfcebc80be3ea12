"""Malformed and hostile packets through the preprocessing and the gateway logic.

Thousands of frames: the scapy corpus (fuzz/frames.py: IP options, fragments, VLAN /
QinQ, IPv6 extension headers, non-IP ethertypes, zero-length payloads, wrong length
fields, every truncation) and hypothesis-generated ones. For each:

- ``ip_from_frame`` / ``parse`` / every ``Preprocess`` representation: no exception;
- the gateway engine (real rule builder, in-memory switch model): nothing reaches the
  engine's last-resort ``except`` (``counters['failed'] == 0``), every packet-in is
  counted in exactly one outcome, every frame is forwarded by the switch model or
  dropped by a policy drop rule, the session table stays within its bound, and the
  messages the engine returns are consistent (no rule on a missing meter).

Deterministic (``derandomize=True``); ``EGW_FUZZ_SCALE=10`` multiplies the examples for
a longer run by hand.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.packets import SUPPORTED_LINKTYPES, ip_from_frame, parse
from classifier.preprocess import Preprocess
from fuzz.frames import frames, of_fields, scapy_corpus
from policies.enforcement import enforcement_for
from policies.loader import parse_policy
from ryu_apps.gateway.engine import GatewayEngine
from ryu_apps.gateway.flowtable import FlowTableModel
from ryu_apps.gateway.rules import FORWARD_TABLE, SESSION_PRIORITY, L2Learning, frame_macs
from tests.unit.test_gateway_engine import POLICY  # the same test policy as the engine tests

SCALE = max(1, int(os.environ.get("EGW_FUZZ_SCALE", "1")))
LAN, WAN, OTHER = 1, 2, 3
OUTCOMES = ("mirrored", "duplicate", "ignored", "malformed", "shed", "overload")


PREPROCESSES = [
    Preprocess(repr="packet1480"),
    Preprocess(repr="packet1480", layers="l7", n_bytes=64),
    Preprocess(repr="session784"),
    Preprocess(repr="image900"),
    Preprocess(repr="image900", image_unit="session"),
    Preprocess(repr="kpackets", k=4, n_bytes=40),
]


class PayloadClassifier:
    """A stand-in model: the label follows the first row's bytes (so some sessions are
    dropped, some metered per class or per session, some unknown)."""

    labels = ["voip", "streaming", "p2p", "bulk", "unknown"]

    def __call__(self, batch):
        return [(self.labels[int(np.asarray(x).sum() * 1000) % 5], 0.9) for x in batch]


class Harness:
    """Engine + switch model + L2 learning, wired like egw.py wires them."""

    def __init__(self, preprocess, classify, policy_text=POLICY, max_sessions=64):
        self.eng = GatewayEngine(
            preprocess, classify, functools.partial(enforcement_for, parse_policy(policy_text)),
            wan_port=WAN, max_sessions=max_sessions, mirror_max_packets=4,
            mirror_max_seconds=0.5, max_mirroring_per_port=24, packet_in_rate=1000,
            clock=lambda: 0.0)
        self.sw = FlowTableModel(ports=[LAN, WAN, OTHER])
        self.sw.apply(self.eng.switch_connected(fresh=True))
        self.l2 = L2Learning()
        self.now = 0.0
        self.frames = 0
        self.dropped_by_policy = 0
        self.dt = 0.01              # clock step per frame

    def push(self, frame: bytes, port: int) -> None:
        self.frames += 1
        self.now += self.dt
        fields = of_fields(frame, port)
        if fields is not None:
            v = self.sw.process(fields)
            forwarded = bool(v.outputs) or FORWARD_TABLE in v.to_controller
            by_policy = v.dropped and any(r.priority == SESSION_PRIORITY and r.is_drop
                                          for r in v.rules)
            assert forwarded or by_policy, (frame.hex(), v)
            self.dropped_by_policy += by_policy
            if FORWARD_TABLE in v.to_controller:
                # egw.py's forwarding half: learn and packet-out (never parses more)
                macs = frame_macs(frame)
                assert macs is not None
                _out, rules = self.l2.packet(1, port, *macs)
                self.sw.apply(rules)
        # The engine gets every frame (a superset of what the switch copies: runts,
        # frames OVS would not take for TCP/UDP, copies of enforced sessions).
        self.sw.apply(self.eng.mirror_packet(port, frame, self.now))
        if self.frames % 7 == 0:
            self.sw.apply(self.eng.flush(self.now))
        if self.frames % 25 == 0:
            self.sw.apply(self.eng.tick(self.now))

    def finish(self) -> None:
        self.now += 5
        self.sw.apply(self.eng.tick(self.now))
        self.sw.apply(self.eng.flush(self.now))
        c = self.eng.counters
        assert c["failed"] == 0, self.eng.faults.describe()
        # every frame handed to the engine is counted once, under one outcome
        assert c["packets"] == self.frames == sum(c[k] for k in OUTCOMES), dict(c)
        assert len(self.eng.table) <= self.eng.table.max_sessions
        # every enforced session's rules are on the switch, with their meter
        for s in self.eng.table:
            if s.state == "enforced" and s.meter_id is not None:
                assert s.meter_id in self.sw.meters


def _ports(i: int) -> int:
    return (LAN, WAN, OTHER)[i % 3]


@pytest.fixture(scope="module")
def corpus():
    return scapy_corpus()


def test_corpus_is_large_and_hostile(corpus):
    names = {n.split("[")[0].split("=")[0] for n, _ in corpus}
    assert len(corpus) >= 3000
    for want in ("ip-options-rr", "ipv4-fragment-1", "vlan", "qinq", "ipv6-hbh-dst-rt",
                 "ipv6-fragment-1", "arp", "lldp", "udp-zero-payload", "ipv4-total-length",
                 "udp-length", "tcp-data-offset", "ipv6-payload-length"):
        assert want in names


def test_parser_and_every_representation_survive_the_scapy_corpus(corpus):
    for name, frame in corpus:
        for lt in SUPPORTED_LINKTYPES:
            ip = ip_from_frame(frame, lt)
            assert ip is None or isinstance(ip, bytes)
        ip = ip_from_frame(frame)
        for raw in (ip, frame):
            if raw is None:
                continue
            pv = parse(raw)
            if pv is not None:
                assert 0 <= pv.payload_offset <= len(raw) and pv.payload_len >= 0, name
                assert len(pv.payload) == pv.payload_len, name
    # representations: sessions made of consecutive corpus frames (bounded for time)
    ips = [ip_from_frame(f) or f for _n, f in corpus[::3]]
    for pp in PREPROCESSES:
        for i in range(0, len(ips), 6):
            pk = [(0.001 * j, ip, j % 2) for j, ip in enumerate(ips[i:i + 6])]
            x = pp.vectorize(pk)
            assert x.shape[1:] == pp.sample_shape and x.dtype == np.float32
            assert np.isfinite(x).all() and (x >= 0).all() and (x <= 1.0 + 1e-6).all() \
                or pp.repr == "kpackets"
            pp.session_ready(pk)


def test_gateway_survives_the_scapy_corpus_with_the_real_model(corpus):
    """The embedded LiteRT bundle and the shipped policy (real classify/enforce)."""
    from classifier.bundle import load_bundle
    from policies import DEFAULT_POLICY_PATH

    bundle = load_bundle()
    h = Harness(bundle.preprocess, bundle.classify,
                policy_text=open(DEFAULT_POLICY_PATH).read(), max_sessions=128)
    for i, (_name, frame) in enumerate(corpus):
        h.push(frame, _ports(i))
    h.finish()
    c = h.eng.counters
    assert c["packets"] == len(corpus) and c["malformed"] > 1000 and c["ignored"] > 50
    assert c["classified"] > 10 and c["errors"] == 0


def test_gateway_survives_the_scapy_corpus_with_drops_and_meters(corpus):
    h = Harness(Preprocess(repr="packet1480", layers="l7", n_bytes=64), PayloadClassifier())
    for i, (_name, frame) in enumerate(corpus):
        h.push(frame, _ports(i))
    h.finish()
    assert h.eng.counters["classified"] > 10
    assert h.dropped_by_policy > 0          # some frames hit a policy drop rule


_SETTINGS = dict(derandomize=True, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much])


@settings(max_examples=800 * SCALE, **_SETTINGS)
@given(frame=frames())
def test_parser_and_preprocess_never_raise(frame):
    for lt in SUPPORTED_LINKTYPES:
        ip_from_frame(frame, lt)
    ip = ip_from_frame(frame)
    for raw in (ip, frame):
        if raw is None:
            continue
        pv = parse(raw)
        if pv is not None:
            assert len(pv.payload) == pv.payload_len
        for pp in PREPROCESSES:
            x = pp.vectorize([(0.0, raw, 0), (0.01, raw, 1)])
            assert x.shape[1:] == pp.sample_shape
            pp.session_ready([(0.0, raw, 0)])


@settings(max_examples=120 * SCALE, **_SETTINGS)
@given(seq=st.lists(st.tuples(frames(), st.integers(0, 2)), min_size=1, max_size=25))
def test_gateway_never_raises_forwards_or_drops_and_counts(seq):
    h = Harness(Preprocess(repr="packet1480", layers="l7", n_bytes=64), PayloadClassifier(),
                max_sessions=16)
    for frame, p in seq:
        h.push(frame, _ports(p))
    h.finish()


def test_flood_of_sessions_keeps_table_bounded_and_enforced_sessions():
    """A port opening thousands of sessions: its untracked excess is shed, the table
    stays within its bound, the enforced sessions of another port survive."""
    from tests.unit.test_gateway_engine import frame as mkframe

    h = Harness(Preprocess(repr="packet1480", layers="l7", n_bytes=64),
                lambda b: [("voip", 0.9)] * len(b), max_sessions=200)
    h.eng.max_mirroring_per_port = 50
    h.eng.mirror_max_seconds = 3.0
    # another device's established sessions
    for i in range(20):
        h.push(mkframe(src="10.0.0.7", sport=30000 + i, proto=17, payload=b"rt" * 10), LAN)
    h.sw.apply(h.eng.flush(h.now))
    keep = {s.sid for s in h.eng.table if s.state == "enforced"}
    assert len(keep) == 20
    h.dt = 1 / 5000.0       # 5000 new sessions per second
    for i in range(5000):   # SYNs with spoofed ports from a flooder on port 3
        h.push(mkframe(src="10.0.0.66", sport=1024 + i % 60000, dport=80, flags=0x02), OTHER)
    h.finish()
    c = h.eng.counters
    assert c["shed"] > 4000
    assert len(h.eng.table) <= 200
    assert keep <= {s.sid for s in h.eng.table}
    assert h.eng.port_load[OTHER] <= 50
