"""Sessions, filtering, masking, representations and Preprocess (exact bytes)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scapy.all import ICMP, IP, TCP, UDP, IPv6, Raw

from classifier.dataerrors import PreprocessError
from classifier.filtering import FilterOptions, SessionFilter, accepts
from classifier.masking import MaskOptions, mask_packet
from classifier.packets import parse
from classifier.pcapio import read_ip_packets
from classifier.preprocess import Preprocess
from classifier.representations import (deepnfv_image, first_k_packets, packet_byte_vector,
                                        session_vector)
from classifier.sessions import split_sessions
from tests.unit.pcap_factory import frame, ip_bytes, tcp_session, udp_session, write_capture

S = np.float32(255.0)


def scaled(b: bytes, n: int) -> np.ndarray:
    return np.frombuffer(b[:n].ljust(n, b"\0"), dtype=np.uint8).astype(np.float32) / S


# ---- sessions -------------------------------------------------------------
def test_bidirectional_sessions_directions_and_order():
    a = tcp_session([(0, b"hi"), (1, b"yo")], t0=10)
    b = udp_session([(1, b"srv-first"), (0, b"cli")], t0=11, sport=7000, dport=8000)
    c = tcp_session([(0, b"v6")], t0=12, v6=True)
    pk = sorted(ip_bytes(a + b + c))
    ss = split_sessions(pk)
    assert [len(s.packets) for s in ss] == [len(a), 2, len(c)]
    assert [d for _t, _p, d in ss[0].packets] == [0, 1, 0, 0, 1, 1, 0, 0]
    # the UDP "server" sent first, so it is the client of that session
    assert [d for _t, _p, d in ss[1].packets] == [0, 1]
    assert ss[2].key[0] == 6


def test_unidirectional_flows_and_idle_timeout():
    pk = ip_bytes(udp_session([(0, b"a"), (1, b"b"), (0, b"c")], dt=1.0))
    assert len(split_sessions(pk, bidirectional=False)) == 2
    assert all(d == 0 for s in split_sessions(pk, bidirectional=False) for _t, _p, d in s.packets)
    late = ip_bytes(udp_session([(0, b"d")], t0=1000.0 + 500))
    ss = split_sessions(pk + late, idle_timeout=60)
    assert [len(s.packets) for s in ss] == [3, 1]
    assert len(split_sessions(pk + late, idle_timeout=1000)) == 1


def test_non_tcp_udp_not_in_sessions():
    pk = [(1.0, bytes(IP() / ICMP())), (2.0, b"junk" * 10)] + ip_bytes(udp_session([(0, b"x")]))
    ss = split_sessions(pk)
    assert len(ss) == 1


# ---- filtering ------------------------------------------------------------
@pytest.mark.parametrize("port", [53, 5353, 5355, 123, 1900, 67, 68, 137, 138, 546, 547, 3702])
def test_chatter_dropped(port):
    assert not accepts(bytes(IP() / UDP(sport=40000, dport=port) / Raw(b"q")))
    assert accepts(bytes(IP() / UDP(sport=40000, dport=port) / Raw(b"q")),
                   FilterOptions(drop_chatter=False))


def test_no_payload_icmp_and_fragments_dropped():
    assert not accepts(bytes(IP() / TCP(flags="S")))
    assert not accepts(bytes(IP() / TCP(flags="A")))
    assert not accepts(bytes(IP() / ICMP() / Raw(b"ping")))
    assert not accepts(bytes(IP(frag=10) / Raw(b"x" * 30)))
    assert accepts(bytes(IP() / TCP(flags="PA") / Raw(b"x")))
    assert accepts(bytes(IPv6() / UDP(sport=1000, dport=2000) / Raw(b"x")))


def test_duplicates_and_retransmissions_dropped():
    s = tcp_session([(0, b"a" * 10), (1, b"b" * 10), (0, b"c" * 10)], handshake=False)
    data = [(t, p) for t, p in s if p[TCP].payload]
    dup = data[0][1].copy()
    dup[IP].ttl = 10  # same packet seen again at another hop: duplicate
    retx = data[0][1].copy()
    retx[IP].id = 999  # same segment sent again: retransmission
    pk = [data[0], (1.0, IP(bytes(dup))), data[1], (2.0, IP(bytes(retx))), data[2]]
    f = SessionFilter(FilterOptions())
    keep = [f.usable(parse(bytes(p)), 0 if p[IP].src == "10.0.0.2" else 1) for _t, p in pk]
    assert keep == [True, False, True, False, True]
    f = SessionFilter(FilterOptions(drop_duplicates=False, drop_retransmissions=False))
    assert all(f.usable(parse(bytes(p)), 0) for _t, p in pk)


def test_seq_wraparound_is_not_a_retransmission():
    f = SessionFilter(FilterOptions())
    p1 = IP() / TCP(seq=0xFFFFFFF0, flags="PA") / Raw(b"x" * 32)
    p2 = IP() / TCP(seq=0x10, flags="PA") / Raw(b"y" * 32)
    assert f.usable(parse(bytes(p1)), 0) and f.usable(parse(bytes(p2)), 0)


# ---- masking --------------------------------------------------------------
def _tcp4():
    return IP(src="10.1.2.3", dst="10.4.5.6", id=0x1234, ttl=77) / \
        TCP(sport=1111, dport=443, seq=0xAABBCCDD, ack=0x11223344, window=0x4000, flags="PA") / Raw(b"DATA")


def test_mask_ipv4_tcp_exact_bytes():
    raw = bytes(_tcp4())
    m = mask_packet(parse(raw), MaskOptions())
    want = bytearray(raw)
    want[4:6] = b"\0\0"; want[8] = 0; want[10:12] = b"\0\0"; want[12:20] = bytes(8)  # noqa: E702
    want[24:32] = bytes(8); want[36:38] = b"\0\0"  # noqa: E702  seq/ack, tcp checksum
    assert m == bytes(want)
    assert m[20:24] == raw[20:24]  # ports kept by default
    m2 = mask_packet(parse(raw), MaskOptions(zero_ports=True, zero_seq_ack=False))
    assert m2[20:24] == bytes(4) and m2[24:32] == raw[24:32]
    assert mask_packet(parse(raw), MaskOptions(**{k: False for k in vars(MaskOptions())})) == raw


def test_mask_ipv6_udp_pads_to_tcp_header_length():
    p = IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0xABCDE, hlim=5, tc=0x20) / \
        UDP(sport=5000, dport=6000) / Raw(b"PAYLOAD")
    raw = bytes(p)
    m = mask_packet(parse(raw), MaskOptions())
    want = bytearray(raw)
    want[1] &= 0xF0; want[2:4] = b"\0\0"; want[7] = 0; want[8:40] = bytes(32)  # noqa: E702
    want[46:48] = b"\0\0"
    want[48:48] = bytes(12)
    assert m == bytes(want) and len(m) == len(raw) + 12
    assert m[0] == raw[0] and m[1] == raw[1] & 0xF0  # traffic class kept, flow label zeroed
    assert mask_packet(parse(raw), MaskOptions(pad_udp=False))[48:] == b"PAYLOAD"


# ---- representations ------------------------------------------------------
def test_representation_functions_exact():
    v = packet_byte_vector(b"\x00\xff\x80", 5)
    assert v.dtype == np.float32 and v.tolist() == [0.0, 1.0, np.float32(128) / S, 0.0, 0.0]
    assert packet_byte_vector(bytes(range(200)), 10).tolist() == scaled(bytes(range(10)), 10).tolist()
    sv = session_vector([b"ab", b"cde", b"fgh"], 6)
    assert np.array_equal(sv, scaled(b"abcdef", 6))
    img = deepnfv_image(bytes(range(10)), 3)
    assert img.shape == (3, 3) and np.array_equal(img.ravel(), scaled(bytes(range(9)), 9))
    km = first_k_packets([b"\x01\x02", b"\x03"], [100, 3000], [0, 1], [1.0, 1.5], k=3, n_bytes=2)
    assert km.shape == (3, 5)
    assert np.array_equal(km[0], np.array([1 / 255, 2 / 255, 100 / 1500, 0, 0], dtype=np.float32))
    assert km[1, 2] == 1.0 and km[1, 3] == 1.0
    assert km[1, 4] == pytest.approx(np.log1p(500) / np.log1p(60000))
    assert not km[2].any()


def _session():
    return tcp_session([(0, b"\x16\x03\x01" + b"A" * 600), (1, b"\x16\x03\x03" + b"B" * 400),
                        (0, b"C" * 50)])


def test_vectorize_each_representation_exact_bytes():
    pk = [(t, bytes(p), 0 if p[IP].src == "10.0.0.2" else 1) for t, p in _session()]
    usable = [(t, b, d) for t, b, d in pk if parse(b).payload_len]
    masked = [mask_packet(parse(b), MaskOptions()) for _t, b, _d in usable]
    payloads = [parse(b).payload for _t, b, _d in usable]

    x = Preprocess(repr="packet1480").vectorize(pk)
    assert x.shape == (3, 1480) and x.dtype == np.float32
    assert all(np.array_equal(x[i], scaled(masked[i], 1480)) for i in range(3))

    x = Preprocess(repr="session784").vectorize(pk)
    assert x.shape == (1, 784) and np.array_equal(x[0], scaled(b"".join(masked), 784))
    x = Preprocess(repr="session784", layers="l7").vectorize(pk)
    assert np.array_equal(x[0], scaled(b"".join(payloads), 784))

    x = Preprocess(repr="image900").vectorize(pk)
    assert x.shape == (3, 30, 30) and np.array_equal(x[1].ravel(), scaled(masked[1], 900))
    x = Preprocess(repr="image900", image_unit="session").vectorize(pk)
    assert x.shape == (1, 30, 30) and np.array_equal(x[0].ravel(), scaled(b"".join(masked), 900))

    x = Preprocess(repr="kpackets", k=4, n_bytes=60).vectorize(pk)
    assert x.shape == (1, 4, 63)
    for i in range(3):
        assert np.array_equal(x[0, i, :60], scaled(masked[i], 60))
        assert x[0, i, 60] == np.float32(len(usable[i][1]) / 1500)
        assert x[0, i, 61] == usable[i][2]
    assert x[0, 1, 62] == np.float32(np.log1p((usable[1][0] - usable[0][0]) * 1000) / np.log1p(60000))
    assert not x[0, 3].any()


def test_vectorize_empty_and_chatter_sessions():
    p = Preprocess(repr="session784")
    assert p.vectorize([]).shape == (0, 784)
    dns = ip_bytes(udp_session([(0, b"q"), (1, b"a")], dport=53))
    assert p.vectorize([(t, b, 0) for t, b in dns]).shape == (0, 784)


def test_max_packets_budget_and_session_ready():
    pk = [(t, bytes(p), 0) for t, p in tcp_session([(0, b"x" * 100)] * 5)]
    p = Preprocess(repr="session784", max_packets=2, layers="l7")
    assert p.mirror_budget() == (2, 784)
    assert np.array_equal(p.vectorize(pk)[0], scaled(b"x" * 200, 784))
    assert not p.session_ready(pk[:4]) and p.session_ready(pk)
    assert Preprocess(repr="packet1480").mirror_budget() == (1, 1480)
    assert Preprocess(repr="packet1480").session_ready(pk[:4])  # handshake + first data
    assert not Preprocess(repr="packet1480").session_ready(pk[:3])
    assert Preprocess(repr="kpackets", k=3, n_bytes=50).mirror_budget() == (3, 150)
    big = Preprocess(repr="session784", max_packets=None)  # one full-size packet fills 784 bytes
    assert big.session_ready([(0.0, bytes(IP() / TCP(flags="PA") / Raw(b"z" * 1400)), 0)])


def test_vectorize_packet_and_accepts():
    p = Preprocess(repr="packet1480")
    raw = bytes(_tcp4())
    assert p.accepts(raw) and not p.accepts(bytes(IP() / TCP(flags="A")))
    v = p.vectorize_packet(1.0, raw, 0)
    assert np.array_equal(v, scaled(mask_packet(parse(raw), MaskOptions()), 1480))
    assert p.vectorize_packet(1.0, bytes(IP() / UDP(dport=53) / Raw(b"q")), 0) is None
    assert Preprocess().vectorize_packet(1.0, raw).shape == (784,)


# ---- live path == pcap path -----------------------------------------------
@pytest.mark.parametrize("repr_", ["packet1480", "session784", "image900", "kpackets"])
@pytest.mark.parametrize("v6", [False, True])
def test_live_frames_and_pcap_give_identical_vectors(tmp_path, repr_, v6):
    from classifier.packets import ip_from_frame
    pk = tcp_session([(0, b"hello" * 30), (1, b"world" * 50)], v6=v6) + \
        udp_session([(0, b"rtp" * 20), (1, b"rtcp" * 3)], t0=1000.02, v6=v6)
    pre = Preprocess(repr=repr_)
    # offline: a raw-IP pcap -> sessions -> vectorize
    path = write_capture(tmp_path / "s.pcap", pk, link="raw")
    offline = [pre.vectorize(s.packets) for s in split_sessions(read_ip_packets(path))]
    # live: Ethernet frames as the controller receives them (padded to 60 bytes),
    # one session table keyed by PacketView.session_key()
    table: dict = {}
    for t, p in sorted(pk, key=lambda x: x[0]):
        fr = bytes(frame(p, "ether"))
        fr += bytes(max(0, 60 - len(fr)))
        ip = ip_from_frame(fr, 1)
        key, d = parse(ip).session_key()
        first = table.setdefault(key, (d, []))
        first[1].append((t, ip, 0 if d == first[0] else 1))
    live = [pre.vectorize(v[1]) for v in table.values()]
    assert len(offline) == len(live) == 2
    for a, b in zip(offline, live):
        assert a.shape == b.shape and a.shape[0] >= 1 and np.array_equal(a, b)


# ---- (de)serialisation ----------------------------------------------------
def test_preprocess_json_roundtrip_and_errors(tmp_path):
    p = Preprocess(repr="kpackets", k=5, mask=MaskOptions(zero_ports=True),
                   filter=FilterOptions(chatter_ports=[53]))
    f = tmp_path / "preprocess.json"
    p.to_json(f)
    q = Preprocess.from_json(f)
    assert q == p and q.to_dict() == p.to_dict() and q.mask.zero_ports
    assert not q.accepts(bytes(IP() / UDP(dport=53) / Raw(b"x")))
    assert q.accepts(bytes(IP() / UDP(sport=4000, dport=5353) / Raw(b"x")))
    for content, msg in [("{", "not valid JSON"), ('{"repr": "nope"}', "unknown representation"),
                         ('{"colour": 1}', "unknown key"), ("[1]", "JSON object"),
                         ('{"mask": {"zero_mac": true}}', "unknown key(s) in mask"),
                         ('{"repr": "image900", "n_bytes": 50}', "square")]:
        f.write_text(content)
        with pytest.raises(PreprocessError) as ei:
            Preprocess.from_json(f)
        assert ei.value.user_facing and str(f) in str(ei.value) and msg in str(ei.value)
    assert json.loads(json.dumps(Preprocess().to_dict()))["n_bytes"] == 784
