"""Hostile frames for the robustness tests (tests/unit/test_robust_packets.py) and the
fuzz harnesses (fuzz/fuzz_packets.py).

Two sources:

- :func:`scapy_corpus`: hand-picked hostile packets built with scapy (IP options,
  fragments, VLAN / QinQ tags, IPv6 extension-header chains, non-IP ethertypes,
  zero-length payloads, wrong length fields), each also cut at every length (truncated
  headers): a deterministic corpus of a few thousand frames.
- :func:`frames`: a hypothesis strategy that builds a frame layer by layer from
  random choices (same ingredients) and then mutates it (truncation, a corrupted
  length field, flipped bytes).

:func:`of_fields` gives what an OpenFlow 1.3 switch would match on for a frame, for
the in-memory flow-table model.
"""
from __future__ import annotations

import ipaddress
import struct

from hypothesis import strategies as st

from classifier.packets import ETH_VLAN_TAGS, ip_from_frame, parse

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def _scapy():
    import logging

    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy import all as sc  # noqa: F401  (slow import: only when used)

    return sc


def base_packets() -> list[tuple[str, bytes]]:
    """(name, frame) of well-formed but unusual packets."""
    sc = _scapy()
    E = sc.Ether(src=MAC_A, dst=MAC_B)
    v4 = dict(src="10.0.0.2", dst="10.0.0.1")
    v6 = dict(src="fd00::2", dst="fd00::1")
    big = sc.IP(**v4) / sc.UDP(sport=40000, dport=5000) / (b"F" * 3000)
    pk = [
        ("tcp-syn", E / sc.IP(**v4) / sc.TCP(sport=40000, dport=443, flags="S")),
        ("tcp-payload", E / sc.IP(**v4) / sc.TCP(sport=40001, dport=443, flags="PA")
         / (b"\x16\x03\x01\x00\x10" + b"h" * 16)),
        ("tcp-options", E / sc.IP(**v4) / sc.TCP(sport=40002, dport=443, flags="PA",
                                                 options=[("MSS", 1460), ("SAckOK", b""),
                                                          ("Timestamp", (1, 2)),
                                                          ("WScale", 7)]) / b"data"),
        ("udp-zero-payload", E / sc.IP(**v4) / sc.UDP(sport=40003, dport=5000)),
        ("udp-payload", E / sc.IP(**v4) / sc.UDP(sport=40004, dport=5000) / (b"u" * 100)),
        ("ip-options-rr", E / sc.IP(**v4, options=[sc.IPOption_RR(routers=["1.2.3.4"] * 3)])
         / sc.UDP(sport=40005, dport=5000) / b"opt"),
        ("ip-options-ts", E / sc.IP(**v4, options=[sc.IPOption_Timestamp(flg=0)])
         / sc.TCP(sport=40006, dport=80, flags="PA") / b"GET /"),
        ("ip-options-max", E / sc.IP(**v4, options=[sc.IPOption_NOP()] * 40)
         / sc.UDP(sport=40007, dport=5000) / b"x"),
        ("icmp", E / sc.IP(**v4) / sc.ICMP() / b"ping"),
        ("gre", E / sc.IP(**v4, proto=47) / (b"\x00\x00\x08\x00" + b"g" * 20)),
        ("vlan", E / sc.Dot1Q(vlan=10) / sc.IP(**v4) / sc.UDP(sport=40008, dport=5000) / b"v"),
        ("qinq", sc.Ether(src=MAC_A, dst=MAC_B, type=0x88A8) / sc.Dot1AD(vlan=20)
         / sc.Dot1Q(vlan=10) / sc.IP(**v4) / sc.TCP(sport=40009, dport=443, flags="PA") / b"q"),
        ("vlan-arp", E / sc.Dot1Q(vlan=5) / sc.ARP(psrc="10.0.0.2", pdst="10.0.0.1")),
        ("arp", E / sc.ARP(psrc="10.0.0.2", pdst="10.0.0.1")),
        ("lldp", sc.Ether(src=MAC_A, dst="01:80:c2:00:00:0e", type=0x88CC) / (b"\x02\x07" * 10)),
        ("ethertype-unknown", sc.Ether(src=MAC_A, dst=MAC_B, type=0x1234) / (b"z" * 30)),
        ("ipv6-tcp", E / sc.IPv6(**v6) / sc.TCP(sport=40010, dport=443, flags="PA") / b"six"),
        ("ipv6-hbh-dst-rt", E / sc.IPv6(**v6) / sc.IPv6ExtHdrHopByHop()
         / sc.IPv6ExtHdrDestOpt() / sc.IPv6ExtHdrRouting() / sc.UDP(sport=40011, dport=5000)
         / b"ext"),
        ("ipv6-ah", E / sc.IPv6(**v6, nh=51) / (struct.pack("!BBHII", 17, 4, 0, 1, 1) + b"\0" * 12)
         / sc.UDP(sport=40012, dport=5000) / b"ah"),
        ("ipv6-icmp", E / sc.IPv6(**v6) / sc.ICMPv6EchoRequest()),
        ("ipv6-no-next", E / sc.IPv6(**v6, nh=59)),
    ]
    for i, f in enumerate(sc.fragment(big, fragsize=1000)):
        pk.append((f"ipv4-fragment-{i}", bytes(E / f)))
    frag6 = sc.fragment6(sc.IPv6(**v6) / sc.IPv6ExtHdrFragment() / sc.UDP(sport=40013, dport=5000)
                         / (b"S" * 2000), 1280)
    for i, f in enumerate(frag6):
        pk.append((f"ipv6-fragment-{i}", bytes(E / f)))
    out = [(n, bytes(p)) for n, p in pk]
    # wrong length fields on otherwise good packets
    udp = bytes(E / sc.IP(**v4) / sc.UDP(sport=40014, dport=5000) / (b"L" * 40))
    tcp = bytes(E / sc.IP(**v4) / sc.TCP(sport=40015, dport=443, flags="PA") / (b"T" * 40))
    six = bytes(E / sc.IPv6(**v6) / sc.UDP(sport=40016, dport=5000) / (b"6" * 40))
    for name, frame, off, fmt, values in (
        ("ipv4-total-length", udp, 16, "!H", (0, 1, 19, 20, 21, 60, 0xFFFF)),
        ("ipv4-ihl", udp, 14, "!B", (0x40, 0x41, 0x44, 0x46, 0x4F)),
        ("ipv4-version", udp, 14, "!B", (0x05, 0x65, 0xF5)),
        ("udp-length", udp, 38, "!H", (0, 1, 7, 9, 0xFFFF)),
        ("tcp-data-offset", tcp, 46, "!B", (0x00, 0x10, 0x40, 0xF0)),
        ("ipv6-payload-length", six, 18, "!H", (0, 1, 8, 0xFFFF)),
        ("ipv6-next-header", six, 20, "!B", (0, 43, 44, 51, 60, 255)),
    ):
        for v in values:
            b = bytearray(frame)
            struct.pack_into(fmt, b, off, v)
            out.append((f"{name}={v}", bytes(b)))
    return out


def scapy_corpus() -> list[tuple[str, bytes]]:
    """Every base packet, whole and cut at every length (0 .. len-1), capped at 120."""
    out = []
    for name, frame in base_packets():
        out.append((name, frame))
        for n in range(0, min(len(frame), 120)):
            out.append((f"{name}[:{n}]", frame[:n]))
    return out


# ---- hypothesis ---------------------------------------------------------------------

def _ip4(draw) -> bytes:
    proto = draw(st.sampled_from([6, 17, 1, 47, 0, 255]))
    opts = draw(st.binary(max_size=40))
    opts = opts + b"\x00" * (-len(opts) % 4)
    ihl = 5 + len(opts) // 4
    l4 = _l4(draw, proto)
    frag = draw(st.sampled_from([0, 0, 0, 0x2000, 0x0001, 0x2005, 0x4000]))
    total = 4 * ihl + len(l4)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, draw(st.integers(0, 255)), total,
                      1, frag, 64, proto, 0, draw(st.sampled_from([b"\x0a\0\0\x02", b"\x0a\0\0\x03"])),
                      draw(st.sampled_from([b"\x0a\0\0\x01", b"\xc0\xa8\x01\x01"])))
    return hdr + opts + l4


def _ip6(draw) -> bytes:
    chain = draw(st.lists(st.sampled_from([0, 43, 60, 44, 51]), max_size=4))
    proto = draw(st.sampled_from([6, 17, 58, 59]))
    body = _l4(draw, proto)
    nh = proto
    for h in reversed(chain):
        if h == 44:
            ext = struct.pack("!BBHI", nh, 0, draw(st.sampled_from([0, 1, 8, 9])), 7)
        elif h == 51:
            ext = struct.pack("!BBHII", nh, 4, 0, 1, 1) + bytes(12)
        else:
            n = draw(st.integers(0, 2))
            ext = struct.pack("!BB", nh, n) + bytes(6 + 8 * n)
        body = ext + body
        nh = h
    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(body), nh, 64,
                      ipaddress.ip_address("fd00::2").packed,
                      draw(st.sampled_from([ipaddress.ip_address("fd00::1").packed,
                                            ipaddress.ip_address("2001:db8::1").packed])))
    return hdr + body


def _l4(draw, proto) -> bytes:
    payload = draw(st.one_of(st.just(b""), st.binary(max_size=300)))
    sport = draw(st.sampled_from([40000, 40001, 53, 443, 6881]))
    dport = draw(st.sampled_from([443, 80, 5000, 123, 40000]))
    if proto == 6:
        opts = bytes(draw(st.sampled_from([0, 4, 12, 40])))
        flags = draw(st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0xFF]))
        return struct.pack("!HHIIBBHHH", sport, dport, draw(st.integers(0, 2**32 - 1)), 0,
                           (5 + len(opts) // 4) << 4, flags, 65535, 0, 0) + opts + payload
    if proto == 17:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return payload


@st.composite
def frames(draw) -> bytes:
    """A random Ethernet frame: VLAN tags, IPv4 (options, fragments) / IPv6 (extension
    headers) / other ethertypes, TCP / UDP / other, then a random mutation."""
    kind = draw(st.sampled_from(["ip4", "ip4", "ip6", "ip6", "arp", "other", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=200))
    tags = b"".join(struct.pack("!HH", t, draw(st.integers(0, 4095)))
                    for t in draw(st.lists(st.sampled_from(ETH_VLAN_TAGS), max_size=3)))
    if kind == "ip4":
        etype, body = 0x0800, _ip4(draw)
    elif kind == "ip6":
        etype, body = 0x86DD, _ip6(draw)
    elif kind == "arp":
        etype, body = 0x0806, draw(st.binary(min_size=28, max_size=28))
    else:
        etype, body = draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=100))
    eth = bytes.fromhex(MAC_B.replace(":", "")) + bytes.fromhex(MAC_A.replace(":", ""))
    frame = bytearray(eth + tags + struct.pack("!H", etype) + body)
    mutation = draw(st.sampled_from(["none", "none", "truncate", "field", "flip", "pad"]))
    if mutation == "truncate" and frame:
        frame = frame[:draw(st.integers(0, len(frame) - 1))]
    elif mutation == "field" and len(frame) > 14:
        off = draw(st.integers(12, min(len(frame) - 1, 80)))
        frame[off] = draw(st.integers(0, 255))
    elif mutation == "flip" and frame:
        for _ in range(draw(st.integers(1, 4))):
            off = draw(st.integers(0, len(frame) - 1))
            frame[off] ^= 1 << draw(st.integers(0, 7))
    elif mutation == "pad":
        frame += bytes(draw(st.integers(1, 40)))
    return bytes(frame)


# ---- what the switch matches on ---------------------------------------------------

def of_fields(frame: bytes, in_port: int) -> dict | None:
    """OpenFlow 1.3 match fields of ``frame`` as OVS would extract them (None: not an
    Ethernet frame at all)."""
    if len(frame) < 14:
        return None
    f = {"in_port": in_port,
         "eth_dst": ":".join(f"{b:02x}" for b in frame[0:6]),
         "eth_src": ":".join(f"{b:02x}" for b in frame[6:12])}
    off, etype = 14, struct.unpack_from("!H", frame, 12)[0]
    while etype in ETH_VLAN_TAGS and len(frame) >= off + 4:
        etype = struct.unpack_from("!H", frame, off + 2)[0]
        off += 4
    f["eth_type"] = etype
    ip = ip_from_frame(frame)
    pv = parse(ip) if ip is not None else None
    if pv is None:
        return f
    f["ip_proto"] = pv.proto
    v = "ipv4" if pv.version == 4 else "ipv6"
    f[f"{v}_src"] = str(ipaddress.ip_address(pv.src))
    f[f"{v}_dst"] = str(ipaddress.ip_address(pv.dst))
    f["ip_dscp"] = (ip[1] >> 2) if pv.version == 4 else ((ip[0] & 0x0F) << 2 | ip[1] >> 6)
    if not pv.fragment and pv.proto in (6, 17):
        l4 = "tcp" if pv.proto == 6 else "udp"
        f[f"{l4}_src"], f[f"{l4}_dst"] = pv.sport, pv.dport
    return f
