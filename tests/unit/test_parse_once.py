"""Parse once (issue 15 item 4): the gateway keeps each packet-in's PacketView, decides
readiness incrementally and vectorizes from the kept views; both must agree with the
whole-session functions the offline path uses."""
from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from classifier.filtering import FilterOptions
from classifier.packets import parse
from classifier.pcapio import read_ip_packets
from classifier.preprocess import Preprocess
from classifier.sessions import split_sessions
from policies.enforcement import enforcement_for
from policies.loader import parse_policy
from ryu_apps.gateway.engine import GatewayEngine
from tests.unit.pcap_factory import frame, tcp_session, udp_session, write_capture

POLICY = parse_policy("""
version: 1
default: {action: allow}
classes: {}
wan: {uplink_kbps: 20000, default_class: be, classes: [{name: be, dscp: [CS0], rate_kbps: 20000}]}
""")


def reference_ready(pre: Preprocess, packets) -> bool:
    """``session_ready`` as it was before readiness became incremental: re-parse the
    whole session, filter it, count the usable packets and bytes against the budget."""
    max_pk, max_b = pre.mirror_budget()
    n = b = 0
    for _ts, pv, _d in pre._usable([(ts, parse(ip), d) for ts, ip, d in packets]):
        n += 1
        b += pre._contribution(pv)
        if n >= max_pk or b >= max_b:
            return True
    return False


def _ip(rng, d, proto, seq, ttl, payload, sport, dport):
    src, dst = (b"\x0a\0\0\x02", b"\x5d\xb8\xd8\x22") if d == 0 else \
        (b"\x5d\xb8\xd8\x22", b"\x0a\0\0\x02")
    sp, dp = (sport, dport) if d == 0 else (dport, sport)
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", sp, dp, seq, 0, 5 << 4, 0x18, 8192, 0, 0)
    else:
        l4 = struct.pack("!HHHH", sp, dp, 8 + len(payload), 0)
    total = 20 + len(l4) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, rng.randrange(65536), 0, ttl, proto, 0,
                     src, dst)
    return ip + l4 + payload


def random_session(rng: random.Random) -> list[tuple[float, bytes, int]]:
    """One session with empty segments, duplicates (TTL changed), retransmissions and
    out-of-order segments, sometimes on a chatter port."""
    proto = rng.choice((6, 17))
    sport, dport = rng.randrange(1024, 65535), rng.choice((443, 3478, 53, 8080))
    seq = [rng.randrange(1 << 32), rng.randrange(1 << 32)]
    out: list[tuple[float, bytes, int]] = []
    t = 0.0
    for _ in range(rng.randrange(1, 40)):
        t += rng.random() * 0.01
        r = rng.random()
        if out and r < 0.15:                      # exact duplicate, another TTL
            ts, ip, d = rng.choice(out)
            ip = bytearray(ip)
            ip[8] = rng.randrange(1, 255)
            out.append((t, bytes(ip), d))
            continue
        d = rng.randrange(2)
        n = rng.choice((0, 0, 1, rng.randrange(1, 200), rng.randrange(200, 1400)))
        s = seq[d]
        if r < 0.3:                               # retransmission / late segment
            s = (s - rng.randrange(0, 3000)) & 0xFFFFFFFF
        else:
            seq[d] = (seq[d] + n) & 0xFFFFFFFF
        out.append((t, _ip(rng, d, proto, s, 64, rng.randbytes(n), sport, dport), d))
    return out


def random_preprocess(rng: random.Random) -> Preprocess:
    repr_ = rng.choice(("packet1480", "session784", "image900", "kpackets"))
    kw = {"repr": repr_, "layers": rng.choice(("all", "l7")),
          "max_packets": rng.choice((None, 1, 2, 5, 10)),
          "filter": FilterOptions(drop_duplicates=rng.random() < 0.8,
                                  drop_retransmissions=rng.random() < 0.8,
                                  drop_no_payload=rng.random() < 0.8,
                                  drop_chatter=rng.random() < 0.8)}
    if repr_ == "image900":
        kw["n_bytes"] = rng.choice((100, 400, 900))
        kw["image_unit"] = rng.choice(("packet", "session"))
    elif repr_ == "kpackets":
        kw["k"], kw["n_bytes"] = rng.randrange(1, 10), rng.choice((20, 100))
    else:
        kw["n_bytes"] = rng.choice((50, 300, 784, 1480))
    return Preprocess(**kw)


def test_incremental_readiness_equals_session_ready_on_random_sessions():
    rng = random.Random(15)
    flips = 0
    for _ in range(400):
        pre, packets = random_preprocess(rng), random_session(rng)
        r = pre.readiness()
        for i, (ts, ip, d) in enumerate(packets):
            want = reference_ready(pre, packets[:i + 1])
            assert r.add(ts, parse(ip), d) == want == pre.session_ready(packets[:i + 1]), \
                (pre, i)
        flips += r.ready
    assert 50 < flips < 400        # both outcomes were exercised


@pytest.mark.parametrize("repr_", ["packet1480", "session784", "image900", "kpackets"])
def test_gateway_vectors_equal_the_offline_build(tmp_path, repr_):
    """Frames through GatewayEngine.mirror_packet (parse once, readiness, vectorize_views)
    give the classifier the first row of what the offline build makes of the pcap."""
    pk = tcp_session([(0, b"hello" * 30), (1, b"world" * 50), (0, b"x" * 900)] * 3) + \
        udp_session([(0, b"rtp" * 20), (1, b"rtcp" * 3)] * 6, t0=1000.02, sport=50001)
    pre = Preprocess(repr=repr_)
    path = write_capture(tmp_path / "s.pcap", pk, link="raw")
    offline = [pre.vectorize(s.packets)[0] for s in split_sessions(read_ip_packets(path))]
    seen: list[np.ndarray] = []

    def classify(batch):
        seen.extend(batch)
        return [("x", 1.0)] * len(batch)

    eng = GatewayEngine(pre, classify, lambda c, m, i, confidence=None:
                        enforcement_for(POLICY, c, m, i), mirror_max_packets=1000,
                        mirror_max_seconds=100.0)
    eng.switch_connected(fresh=True, now=0.0)
    for t, p in sorted(pk, key=lambda x: x[0]):
        fr = bytes(frame(p, "ether"))
        eng.mirror_packet(1, fr + bytes(max(0, 60 - len(fr))), now=t)
        eng.flush(now=t)
    eng.tick(now=5000.0)           # a session that never filled its budget: time cap
    assert len(seen) == len(offline) == 2
    for a in offline:              # (classified in the order they filled their budget)
        assert sum(np.array_equal(a, b) for b in seen) == 1
    assert {s["reason"] for s in eng.sessions()} <= {"model", "cap"}


def test_model_reload_recounts_readiness_of_sessions_being_mirrored():
    """A new model's budget applies to the packets a mirroring session already has."""
    seen = []
    eng = GatewayEngine(Preprocess(repr="kpackets", k=8), lambda b: seen.extend(b) or
                        [("x", 1.0)] * len(b), lambda c, m, i, confidence=None:
                        enforcement_for(POLICY, c, m, i), mirror_max_seconds=100.0)
    eng.switch_connected(fresh=True, now=0.0)
    for t, p in udp_session([(0, b"a" * 50), (1, b"b" * 50), (0, b"c" * 50)]):
        eng.mirror_packet(1, bytes(frame(p, "ether")), now=t - 1000.0)
    (s,) = eng.table
    assert s.readiness.n == 3 and not s.readiness.ready and not eng.has_pending()
    eng.set_model(Preprocess(repr="packet1480"), eng.classify)
    assert s.readiness.ready           # one usable packet fills a per-packet budget
    eng.tick(now=200.0)
    assert [x["reason"] for x in eng.sessions()] == ["model"] and len(seen) == 1
