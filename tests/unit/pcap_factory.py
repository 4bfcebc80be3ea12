"""Small captures made with scapy for tests (reusable by any package's tests).

    from tests.unit.pcap_factory import tcp_session, udp_session, write_capture
    pkts = tcp_session(payloads=[(0, b"GET /"), (1, b"HTTP/1.1 200")])
    write_capture(tmp_path / "a.pcap", pkts, link="ether")

Packets are ``(timestamp, scapy IP/IPv6 packet)`` pairs; ``ip_bytes(pkts)``
turns them into ``(timestamp, bytes)``. ``link`` is one of ``raw`` (101),
``ether`` (1), ``vlan`` (802.1Q), ``qinq``, ``sll`` (113), ``sll2`` (276),
``null`` (0); ``fmt`` is ``pcap``, ``pcap-ns`` or ``pcapng``.
"""
from __future__ import annotations

import os
import sys

from scapy.all import IP, TCP, UDP, Dot1Q, Ether, IPv6, Raw  # noqa: F401
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Loopback
from scapy.utils import PcapNgWriter, PcapWriter

CLIENT4, SERVER4 = "10.0.0.2", "93.184.216.34"
CLIENT6, SERVER6 = "fd00::2", "2001:db8::80"
MAC_C, MAC_S = "02:00:00:00:00:02", "02:00:00:00:00:01"

LINKTYPES = {"raw": 101, "ether": 1, "vlan": 1, "qinq": 1, "sll": 113, "sll2": 276, "null": 0}


def _ip(v6: bool, src: str, dst: str, **kw):
    if v6:
        kw.pop("id", None)
        ttl = kw.pop("ttl", 64)
        return IPv6(src=src, dst=dst, hlim=ttl, **kw)
    return IP(src=src, dst=dst, **kw)


def tcp_session(payloads, t0: float = 1000.0, dt: float = 0.01, v6: bool = False,
                sport: int = 40000, dport: int = 443, handshake: bool = True,
                client: str | None = None, server: str | None = None, ttl: int = 64):
    """A TCP conversation: optional 3-way handshake, then ``payloads`` =
    ``[(direction, bytes)]`` (0 client→server) each followed by a bare ACK, then FIN.
    Sequence numbers are consistent, so there is no retransmission."""
    c = client or (CLIENT6 if v6 else CLIENT4)
    s = server or (SERVER6 if v6 else SERVER4)
    seq = [1000, 5000]
    out, t = [], t0
    ipid = [1, 1]

    def mk(d, flags, data=b""):
        nonlocal t
        src, dst = (c, s) if d == 0 else (s, c)
        sp, dp = (sport, dport) if d == 0 else (dport, sport)
        p = _ip(v6, src, dst, id=ipid[d], ttl=ttl) / TCP(sport=sp, dport=dp, flags=flags,
                                                          seq=seq[d], ack=seq[1 - d], window=8192)
        ipid[d] += 1
        if data:
            p = p / Raw(data)
        out.append((t, p.__class__(bytes(p))))
        t += dt
        seq[d] += len(data) + (1 if "S" in flags or "F" in flags else 0)

    if handshake:
        mk(0, "S")
        mk(1, "SA")
        mk(0, "A")
    for d, data in payloads:
        mk(d, "PA", data)
        mk(1 - d, "A")
    mk(0, "FA")
    return out


def udp_session(payloads, t0: float = 1000.0, dt: float = 0.01, v6: bool = False,
                sport: int = 50000, dport: int = 3478, client: str | None = None,
                server: str | None = None):
    """UDP datagrams ``[(direction, bytes)]``."""
    c = client or (CLIENT6 if v6 else CLIENT4)
    s = server or (SERVER6 if v6 else SERVER4)
    out, t = [], t0
    for i, (d, data) in enumerate(payloads):
        src, dst = (c, s) if d == 0 else (s, c)
        sp, dp = (sport, dport) if d == 0 else (dport, sport)
        p = _ip(v6, src, dst, id=100 + i) / UDP(sport=sp, dport=dp) / Raw(data)
        out.append((t, p.__class__(bytes(p))))
        t += dt
    return out


def ip_bytes(pkts):
    """``[(ts, bytes(ip))]``."""
    return [(t, bytes(p)) for t, p in pkts]


def frame(p, link: str = "ether"):
    """Wrap an IP/IPv6 scapy packet in the link layer ``link`` (returns a scapy packet)."""
    ip_type = 0x86DD if p.version == 6 else 0x0800
    if link == "raw":
        return p
    if link == "ether":
        return Ether(src=MAC_C, dst=MAC_S, type=ip_type) / p
    if link == "vlan":
        return Ether(src=MAC_C, dst=MAC_S) / Dot1Q(vlan=10, type=ip_type) / p
    if link == "qinq":
        return Ether(src=MAC_C, dst=MAC_S, type=0x88A8) / Dot1Q(vlan=100, type=0x8100) / \
            Dot1Q(vlan=10, type=ip_type) / p
    if link == "sll":
        return CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02" * 6 + b"\0\0",
                           proto=ip_type) / p
    if link == "sll2":
        return CookedLinuxV2(proto=ip_type, ifindex=2, lladdrtype=1, pkttype=0, lladdrlen=6,
                             src=b"\x02" * 6 + b"\0\0") / p
    if link == "null":
        return Loopback(type=2 if p.version == 4 else (30 if sys.platform == "darwin" else 10)) / p
    raise ValueError(link)


def write_capture(path, pkts, link: str = "raw", fmt: str = "pcap", extra_frames=()):
    """Write ``[(ts, ip_packet)]`` (plus ``extra_frames``: ``[(ts, scapy frame)]`` already
    in ``link`` framing, e.g. ARP) with scapy's writers. Returns ``path``."""
    frames = [(t, frame(p, link)) for t, p in pkts] + list(extra_frames)
    frames.sort(key=lambda x: x[0])
    path = os.fspath(path)
    if fmt == "pcapng":
        w = PcapNgWriter(path)
        for t, f in frames:
            f.time = t
            w.write(f)
        w.close()
        return path
    w = PcapWriter(path, linktype=LINKTYPES[link], nano=(fmt == "pcap-ns"), sync=True)
    for t, f in frames:
        f.time = t
        w.write(f)
    w.close()
    return path
