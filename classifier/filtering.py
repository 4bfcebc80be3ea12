"""Which packets count: the papers' filtering, shared by the offline build and the gateway.

Stateless (:func:`packet_accepts`): the packet must parse, be TCP or UDP, not be a
non-first fragment, not be service chatter (either port in ``CHATTER_PORTS``) and
carry layer-7 payload (bare SYN/ACK/FIN/RST segments are dropped). ARP and other
non-IP frames never get here (``ip_from_frame`` returns None); ICMP/ICMPv6,
IGMP etc. are dropped as non-TCP/UDP.

Stateful, per session (:class:`SessionFilter`): exact duplicates (same IP bytes,
TTL/hop limit and IPv4 checksum ignored) and TCP retransmissions (a segment whose
payload ends at or before the highest sequence number already seen in its
direction, in 32-bit serial arithmetic; this also drops late out-of-order
segments, which carry no new first bytes either).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from classifier.packets import PROTO_TCP, PROTO_UDP, PacketView, parse

#: Service chatter unrelated to the application that owns a capture.
CHATTER_PORTS: dict[int, str] = {
    53: "DNS",
    67: "DHCP server",
    68: "DHCP client",
    123: "NTP",
    137: "NetBIOS name",
    138: "NetBIOS datagram",
    161: "SNMP",
    162: "SNMP trap",
    546: "DHCPv6 client",
    547: "DHCPv6 server",
    1900: "SSDP",
    3702: "WS-Discovery",
    5353: "mDNS",
    5355: "LLMNR",
}


@dataclass
class FilterOptions:
    """Switches for the filtering step (all on by default)."""

    drop_chatter: bool = True
    drop_no_payload: bool = True
    drop_duplicates: bool = True
    drop_retransmissions: bool = True
    chatter_ports: list[int] = field(default_factory=lambda: sorted(CHATTER_PORTS))

    def __post_init__(self) -> None:
        self._ports = frozenset(int(p) for p in self.chatter_ports)


def is_chatter(pv: PacketView, ports: frozenset[int] | None = None) -> bool:
    """True when either port of a TCP/UDP packet is a service-chatter port."""
    ports = frozenset(CHATTER_PORTS) if ports is None else ports
    return pv.sport in ports or pv.dport in ports


def packet_accepts(pv: PacketView | None, opts: FilterOptions) -> bool:
    """Stateless part of the filter (see module doc)."""
    if pv is None or pv.fragment or (pv.proto != PROTO_TCP and pv.proto != PROTO_UDP):
        return False
    if opts.drop_chatter and (pv.sport in opts._ports or pv.dport in opts._ports):
        return False
    if opts.drop_no_payload and pv.payload_len <= 0:
        return False
    return True


def accepts(ip: bytes, opts: FilterOptions | None = None) -> bool:
    """Stateless filter on raw IP bytes (parses them)."""
    return packet_accepts(parse(ip), opts or FilterOptions())


def duplicate_key(pv: PacketView) -> bytes:
    """The packet's bytes without TTL/hop limit and IPv4 header checksum."""
    ip = pv.ip[:pv.length]
    if pv.version == 4:
        return ip[:8] + ip[9:10] + ip[12:]
    return ip[:7] + ip[8:]


class SessionFilter:
    """Feed one session's packets in arrival order; ``usable`` says which count."""

    __slots__ = ("opts", "_seen", "_tcp_end")

    def __init__(self, opts: FilterOptions) -> None:
        self.opts = opts
        self._seen: set[bytes] = set()
        self._tcp_end: dict[int, int] = {}

    def usable(self, pv: PacketView | None, direction: int) -> bool:
        if not packet_accepts(pv, self.opts):
            return False
        if self.opts.drop_duplicates:
            k = duplicate_key(pv)
            if k in self._seen:
                return False
            self._seen.add(k)
        if self.opts.drop_retransmissions and pv.proto == PROTO_TCP and pv.payload_len > 0:
            end = (pv.seq + pv.payload_len) & 0xFFFFFFFF
            last = self._tcp_end.get(direction)
            if last is not None and not (0 < ((end - last) & 0xFFFFFFFF) < 0x80000000):
                return False
            self._tcp_end[direction] = end
        return True
