"""Link-layer stripping and a light IPv4/IPv6 + TCP/UDP parser (no scapy).

One implementation for both paths: the controller hands :func:`ip_from_frame`
the Ethernet frame of a packet-in, the offline reader hands it pcap records of
any supported link type; both then go through :func:`parse` and
``classifier.preprocess``.
"""
from __future__ import annotations

import struct

# Link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101          # raw IPv4/IPv6 (also DLT_RAW 12 and 14 on some systems)
LINKTYPE_LOOP = 108         # OpenBSD loopback: 4-byte family in network order
LINKTYPE_LINUX_SLL = 113    # Linux cooked v1
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276   # Linux cooked v2
SUPPORTED_LINKTYPES = (0, 1, 12, 14, 101, 108, 113, 228, 229, 276)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100, 0x9200)

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMP = 1
PROTO_ICMPV6 = 58
IPV6_EXT_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options (+ 44 fragment, 51 AH)

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_H = struct.Struct("!H")
_HH = struct.Struct("!HH")
_II = struct.Struct("!II")


def _trim_ip(ip: bytes, want_version: int | None = None) -> bytes | None:
    """Check the IP version and cut link-layer padding/trailers off at the IP length."""
    if len(ip) < 20:
        return None
    v = ip[0] >> 4
    if want_version is not None and v != want_version:
        return None
    if v == 4:
        tl = _H.unpack_from(ip, 2)[0]
        if 20 <= tl < len(ip):
            return ip[:tl]
        return ip
    if v == 6:
        if len(ip) < 40:
            return None
        tl = 40 + _H.unpack_from(ip, 4)[0]
        if 40 < tl < len(ip):
            return ip[:tl]
        return ip
    return None


def _from_ethertype(frame: bytes, off: int, etype: int) -> bytes | None:
    while etype in ETH_VLAN_TAGS:
        if len(frame) < off + 4:
            return None
        etype = _H.unpack_from(frame, off + 2)[0]
        off += 4
    if etype == ETH_IPV4:
        return _trim_ip(frame[off:], 4)
    if etype == ETH_IPV6:
        return _trim_ip(frame[off:], 6)
    return None


def ip_from_frame(frame: bytes, linktype: int = LINKTYPE_ETHERNET) -> bytes | None:
    """Return the IPv4/IPv6 packet inside ``frame`` or None (ARP, LLDP, other, garbage).

    ``linktype``: 1 Ethernet (802.1Q / 802.1ad / QinQ tags skipped), 113 Linux
    cooked v1, 276 Linux cooked v2, 101/12/14 raw IP, 228 raw IPv4, 229 raw IPv6,
    0 null/loopback (host byte order family), 108 OpenBSD loopback.
    Link-layer padding (short Ethernet frames, FCS trailers) is cut off at the IP
    total length, so a frame from a packet-in and the same packet read from a
    raw-IP pcap give identical bytes. Never raises on garbage.
    """
    try:
        if linktype == LINKTYPE_ETHERNET:
            if len(frame) < 14:
                return None
            return _from_ethertype(frame, 14, _H.unpack_from(frame, 12)[0])
        if linktype in (LINKTYPE_RAW, 12, 14):
            return _trim_ip(frame)
        if linktype == LINKTYPE_LINUX_SLL:
            if len(frame) < 16:
                return None
            return _from_ethertype(frame, 16, _H.unpack_from(frame, 14)[0])
        if linktype == LINKTYPE_LINUX_SLL2:
            if len(frame) < 20:
                return None
            return _from_ethertype(frame, 20, _H.unpack_from(frame, 0)[0])
        if linktype == LINKTYPE_IPV4:
            return _trim_ip(frame, 4)
        if linktype == LINKTYPE_IPV6:
            return _trim_ip(frame, 6)
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            if len(frame) < 4:
                return None
            fam_le = struct.unpack_from("<I", frame, 0)[0]
            fam_be = struct.unpack_from(">I", frame, 0)[0]
            fam = fam_be if linktype == LINKTYPE_LOOP else (fam_le if fam_le < 65536 else fam_be)
            if fam == 2:
                return _trim_ip(frame[4:], 4)
            if fam in (10, 23, 24, 28, 30):
                return _trim_ip(frame[4:], 6)
            return None
    except (struct.error, IndexError):
        return None
    return None


class PacketView:
    """Offsets and fields of one IP packet; built by :func:`parse`.

    ``ip_header_len`` is the offset of the transport header (IPv6 extension
    headers included); ``transport_header_len`` is 20..60 for TCP, 8 for UDP and
    0 for other protocols or non-first fragments; ``payload_offset`` /
    ``payload_len`` locate the layer-7 payload inside ``ip``.
    """

    __slots__ = ("ip", "version", "proto", "src", "dst", "sport", "dport",
                 "ip_header_len", "transport_header_len", "payload_offset",
                 "payload_len", "tcp_flags", "seq", "ack", "fragment", "length")

    def __init__(self, ip, version, proto, src, dst, sport, dport, ihl, thl,
                 poff, plen, flags, seq, ack, fragment):
        self.ip = ip
        self.version = version
        self.proto = proto
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.ip_header_len = ihl
        self.transport_header_len = thl
        self.payload_offset = poff
        self.payload_len = plen
        self.tcp_flags = flags
        self.seq = seq
        self.ack = ack
        self.fragment = fragment
        self.length = poff + plen  # IP packet length (after trimming)

    @property
    def payload(self) -> bytes:
        return self.ip[self.payload_offset:self.payload_offset + self.payload_len]

    def session_key(self) -> tuple[tuple, int]:
        """Canonical bidirectional key and this packet's direction on it.

        Returns ``((version, proto, addr_a, port_a, addr_b, port_b), direction)``
        where endpoint a is the smaller ``(addr, port)``; direction is 0 when this
        packet goes a→b, 1 when it goes b→a. Both directions of a conversation
        get the same key. (Client/server direction, i.e. who sent first, is
        assigned by ``classifier.sessions``.)
        """
        s = (self.src, self.sport)
        d = (self.dst, self.dport)
        if s <= d:
            return (self.version, self.proto, self.src, self.sport, self.dst, self.dport), 0
        return (self.version, self.proto, self.dst, self.dport, self.src, self.sport), 1

    def flow_key(self) -> tuple:
        """Unidirectional 5-tuple key (source first)."""
        return (self.version, self.proto, self.src, self.sport, self.dst, self.dport)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return (f"PacketView(v{self.version} proto={self.proto} {self.sport}->{self.dport} "
                f"ihl={self.ip_header_len} thl={self.transport_header_len} "
                f"payload={self.payload_len} flags={self.tcp_flags:#x})")


def parse(ip: bytes) -> PacketView | None:
    """Parse an IPv4/IPv6 packet; None for anything that is not a sane IP packet.

    Never raises. Packets cut short by the capture's snap length are parsed as far
    as they go (payload length counts captured bytes). Non-first fragments get
    ``fragment=True`` and no transport header.
    """
    try:
        return _parse(ip)
    except (struct.error, IndexError, TypeError):
        return None


def _parse(ip: bytes) -> PacketView | None:
    n = len(ip)
    if n < 20:
        return None
    b0 = ip[0]
    version = b0 >> 4
    fragment = False
    if version == 4:
        ihl = (b0 & 0x0F) * 4
        if ihl < 20 or ihl > n:
            return None
        tl = _H.unpack_from(ip, 2)[0]
        end = tl if ihl <= tl <= n else n
        proto = ip[9]
        src = ip[12:16]
        dst = ip[16:20]
        if _H.unpack_from(ip, 6)[0] & 0x1FFF:
            fragment = True
        off = ihl
    elif version == 6:
        if n < 40:
            return None
        tl = 40 + _H.unpack_from(ip, 4)[0]
        end = tl if 40 < tl <= n else n
        proto = ip[6]
        src = ip[8:24]
        dst = ip[24:40]
        off = 40
        while True:
            if proto in IPV6_EXT_HEADERS:
                if off + 8 > end:
                    return None
                proto, hl = ip[off], (ip[off + 1] + 1) * 8
                off += hl
            elif proto == 44:  # fragment header
                if off + 8 > end:
                    return None
                if _H.unpack_from(ip, off + 2)[0] & 0xFFF8:
                    fragment = True
                proto = ip[off]
                off += 8
            elif proto == 51:  # AH
                if off + 8 > end:
                    return None
                proto, hl = ip[off], (ip[off + 1] + 2) * 4
                off += hl
            else:
                break
        if off > end:
            return None
    else:
        return None
    sport = dport = flags = seq = ack = 0
    thl = 0
    if not fragment:
        if proto == PROTO_TCP:
            if off + 20 > end:
                return None
            sport, dport = _HH.unpack_from(ip, off)
            seq, ack = _II.unpack_from(ip, off + 4)
            thl = (ip[off + 12] >> 4) * 4
            if thl < 20 or off + thl > end:
                return None
            flags = ip[off + 13]
        elif proto == PROTO_UDP:
            if off + 8 > end:
                return None
            sport, dport = _HH.unpack_from(ip, off)
            thl = 8
    poff = off + thl
    return PacketView(ip, version, proto, src, dst, sport, dport, off, thl,
                      poff, end - poff, flags, seq, ack, fragment)
