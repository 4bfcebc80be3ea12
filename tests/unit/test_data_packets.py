"""classifier.packets and classifier.pcapio: link layers, parsing, bad files."""
from __future__ import annotations

import os
import random
import struct

import pytest
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, IPv6, IPv6ExtHdrHopByHop, Raw

from classifier.dataerrors import PcapError
from classifier.packets import ip_from_frame, parse
from classifier.pcapio import read_frames, read_ip_packets
from tests.unit.pcap_factory import LINKTYPES, frame, ip_bytes, tcp_session, udp_session, write_capture


def test_parse_ipv4_tcp_fields():
    p = IP(src="10.0.0.2", dst="10.0.0.9", id=7, ttl=33) / TCP(sport=1234, dport=443, flags="PA",
                                                                 seq=11, ack=22) / Raw(b"hello")
    pv = parse(bytes(p))
    assert (pv.version, pv.proto, pv.sport, pv.dport) == (4, 6, 1234, 443)
    assert pv.src == bytes([10, 0, 0, 2]) and pv.dst == bytes([10, 0, 0, 9])
    assert (pv.ip_header_len, pv.transport_header_len, pv.payload_offset, pv.payload_len) == (20, 20, 40, 5)
    assert pv.tcp_flags == 0x18 and (pv.seq, pv.ack) == (11, 22)
    assert pv.payload == b"hello"


def test_parse_ipv6_udp_with_extension_header():
    p = IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrHopByHop() / UDP(sport=5, dport=6) / Raw(b"xyz")
    pv = parse(bytes(p))
    assert (pv.version, pv.proto, pv.sport, pv.dport) == (6, 17, 5, 6)
    assert pv.ip_header_len == 48 and pv.transport_header_len == 8 and pv.payload == b"xyz"


def test_parse_never_raises_on_garbage():
    rnd = random.Random(1)
    base = bytes(IP() / TCP() / Raw(b"x" * 30))
    for n in range(0, 80):
        assert parse(bytes(rnd.getrandbits(8) for _ in range(n))) is None or True
    for cut in range(len(base)):
        parse(base[:cut])  # no exception
    assert parse(b"") is None and parse(b"\x45" + bytes(10)) is None
    assert parse(b"\x4f" + bytes(19)) is None  # IHL 60 > length


def test_session_key_is_symmetric():
    a = parse(bytes(IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2)))
    b = parse(bytes(IP(src="2.2.2.2", dst="1.1.1.1") / UDP(sport=2, dport=1)))
    (ka, da), (kb, db) = a.session_key(), b.session_key()
    assert ka == kb and da != db


@pytest.mark.parametrize("link", ["ether", "vlan", "qinq", "sll", "sll2", "null", "raw"])
@pytest.mark.parametrize("v6", [False, True])
def test_ip_from_frame_all_link_types(link, v6):
    p = tcp_session([(0, b"abc")], v6=v6)[3][1]
    assert ip_from_frame(bytes(frame(p, link)), LINKTYPES[link]) == bytes(p)


def test_ip_from_frame_cuts_ethernet_padding_and_rejects_non_ip():
    p = IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2) / Raw(b"a")
    f = bytes(Ether() / p) + b"\0" * 20  # short frame padded to 60 bytes + trailer
    assert ip_from_frame(f, 1) == bytes(p)
    assert ip_from_frame(bytes(Ether() / ARP()), 1) is None
    assert ip_from_frame(b"\x00" * 5, 1) is None
    assert ip_from_frame(b"garbage-garbage-garbage", 101) is None
    assert ip_from_frame(bytes(Ether(type=0x0800) / IPv6()), 1) is None  # version mismatch


@pytest.mark.parametrize("link", ["raw", "ether", "sll", "sll2", "null", "vlan"])
@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns", "pcapng"])
def test_reader_matches_scapy_written_captures(tmp_path, link, fmt):
    pkts = tcp_session([(0, b"q" * 10), (1, b"r" * 20)], v6=(fmt == "pcap-ns")) + \
        udp_session([(0, b"u")], t0=2000.5)
    extra = [(1500.0, Ether() / ARP())] if link in ("ether", "vlan") else []
    path = write_capture(tmp_path / f"c.{fmt}", pkts, link=link, fmt=fmt, extra_frames=extra)
    got = list(read_ip_packets(path))
    want = ip_bytes(pkts)
    assert [g[1] for g in got] == [w[1] for w in want]
    assert all(abs(g[0] - w[0]) < 1e-5 for g, w in zip(got, want))
    assert len(list(read_frames(path))) == len(pkts) + len(extra)


def test_big_endian_pcap(tmp_path):
    p = bytes(IP() / UDP() / Raw(b"z"))
    data = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    data += struct.pack(">IIII", 5, 250000, len(p), len(p)) + p
    f = tmp_path / "be.pcap"
    f.write_bytes(data)
    assert list(read_ip_packets(f)) == [(5.25, p)]


@pytest.mark.parametrize("content,msg", [
    (b"", "empty"),
    (b"hello world, not a capture at all", "not a pcap"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap file header"),
])
def test_bad_files_one_line_error_naming_file(tmp_path, content, msg):
    f = tmp_path / "bad.pcap"
    f.write_bytes(content)
    with pytest.raises(PcapError) as ei:
        list(read_ip_packets(f))
    assert ei.value.user_facing is True
    assert str(f) in str(ei.value) and msg in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncated_capture(tmp_path, fmt):
    path = write_capture(tmp_path / f"t.{fmt}", tcp_session([(0, b"x" * 100)]), fmt=fmt)
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(size - 30)
    with pytest.raises(PcapError, match="truncated") as ei:
        list(read_ip_packets(path, strict=True))
    assert str(path) in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(PcapError, match="cannot read"):
        read_frames(tmp_path / "nope.pcap")


def test_icmp_parses_without_ports():
    pv = parse(bytes(IP() / ICMP() / Raw(b"ping")))
    assert pv.proto == 1 and pv.sport == 0 and pv.transport_header_len == 0
