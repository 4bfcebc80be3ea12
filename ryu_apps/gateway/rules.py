"""Plain descriptions of OpenFlow 1.3 rules and meters, and the builders of the
gateway's pipeline.

Table layout (see docs/gateway.md):

- table 0 (``SESSION_TABLE``): per-session rules.
  - priority 0: everything else (non-IP, ICMP, ...) -> goto table 1.
  - priority 1 (``MIRROR_PRIORITY``): IPv4/IPv6 TCP and UDP without a session rule ->
    a copy to the controller *and* goto table 1 (the switch keeps forwarding: the
    session never waits for the controller).
  - priority 2 (``OVERLOAD_PRIORITY``): a device over its new-session quota (in_port +
    eth_src) -> goto table 1 without a copy, or drop (the policy's ``on_overload``); and
    traffic to it (eth_dst) -> goto table 1 without a copy; hard timeout, cookie
    ``OVERLOAD_COOKIE``. Its classified sessions keep their own rules (priority 100).
  - priority 3 (``CHATTER_PRIORITY``): service chatter (DNS, DHCP, NTP, mDNS ... the
    bundle's filter ports) -> goto table 1, never mirrored.
  - priority 100 (``SESSION_PRIORITY``): one exact 5-tuple rule per direction of a
    classified session: meter, set_field ip_dscp, set_queue, goto table 1 (or no
    instruction at all: drop), idle/hard timeouts, send_flow_rem, cookie = session.
- table 1 (``FORWARD_TABLE``): L2 learning (priority 1: in_port + eth_dst -> output),
  miss (priority 0) -> controller, which learns and floods.

Nothing here knows Ryu: :mod:`ryu_apps.ofmsg` turns these messages into Ryu's
(``OFPFlowMod``, ``OFPMeterMod``, ...) for the adapter (``ryu_apps/egw.py``); the in-memory model
(:mod:`ryu_apps.gateway.flowtable`) executes them in tests.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable

from classifier.packets import ETH_IPV4, ETH_IPV6, PROTO_TCP, PROTO_UDP, PacketView

SESSION_TABLE = 0
FORWARD_TABLE = 1

MISS_PRIORITY = 0
MIRROR_PRIORITY = 1
OVERLOAD_PRIORITY = 2
CHATTER_PRIORITY = 3
SESSION_PRIORITY = 100
FORWARD_PRIORITY = 1

#: Reserved port numbers (OpenFlow 1.3).
OFPP_FLOOD = 0xFFFFFFFB
OFPP_CONTROLLER = 0xFFFFFFFD

#: Cookies of session rules: COOKIE_TAG in the top 16 bits, session id << 1 | direction.
COOKIE_TAG = 0x4547 << 48
COOKIE_TAG_MASK = 0xFFFF << 48
#: Cookie of the base pipeline rules.
BASE_COOKIE = 0x4547 << 48 | ((1 << 48) - 1)
#: Cookie of the overload rules of devices over their new-session quota.
OVERLOAD_COOKIE = BASE_COOKIE - 1

FORWARD_IDLE_TIMEOUT = 300

#: OpenFlow 1.3's virtual meter for packets sent to the controller (OFPM_CONTROLLER):
#: the switch rate-limits packet-ins with it, before they leave for the controller.
CONTROLLER_METER = 0xFFFFFFFE


def session_cookie(sid: int, direction: int) -> int:
    return COOKIE_TAG | (sid << 1) | (direction & 1)


def decode_cookie(cookie: int) -> tuple[int, int] | None:
    """(session id, direction) of a session rule's cookie, None for other cookies."""
    if cookie & COOKIE_TAG_MASK != COOKIE_TAG or cookie in (BASE_COOKIE, OVERLOAD_COOKIE):
        return None
    low = cookie & ~COOKIE_TAG_MASK
    return low >> 1, low & 1


@dataclass
class FlowRule:
    """One flow entry (or, with ``command='delete'``, a strict delete of it).

    ``actions`` are apply-actions, in order: ``("output", port)``,
    ``("controller",)``, ``("set_field", "ip_dscp", 46)``, ``("set_queue", q)``.
    ``meter`` is a meter instruction (runs first), ``goto`` a goto-table
    instruction. No actions, no meter and no goto: the packet is dropped.
    ``command``: ``add`` | ``delete`` (strict: match + priority) |
    ``delete_all`` (every flow of every table; match ignored).
    """

    table: int
    priority: int
    match: dict[str, Any]
    actions: tuple = ()
    goto: int | None = None
    meter: int | None = None
    idle_timeout: int = 0
    hard_timeout: int = 0
    cookie: int = 0
    send_flow_rem: bool = False
    command: str = "add"
    #: counters of a flow read back from a switch (flow-stats reply); not part of the rule
    packet_count: int = field(default=0, compare=False)
    byte_count: int = field(default=0, compare=False)

    @property
    def is_drop(self) -> bool:
        return not self.actions and self.goto is None and self.meter is None

    def same_effect(self, other: "FlowRule") -> bool:
        """Same actions, goto and timeouts (what a packet and its lifetime see)."""
        return ((tuple(self.actions), self.goto, self.idle_timeout, self.hard_timeout)
                == (tuple(other.actions), other.goto, other.idle_timeout, other.hard_timeout))

    def describe(self) -> str:
        m = ",".join(f"{k}={v}" for k, v in sorted(self.match.items()))
        acts = [":".join(str(x) for x in a) for a in self.actions]
        if self.meter is not None:
            acts.insert(0, f"meter:{self.meter}")
        if self.goto is not None:
            acts.append(f"goto_table:{self.goto}")
        return (f"{self.command} table={self.table} priority={self.priority} {m} "
                f"actions={','.join(acts) or 'drop'}")


@dataclass
class MeterRule:
    """An OpenFlow 1.3 meter with one drop band (``command``: add | modify | delete | delete_all).

    ``pktps``: the rate (``rate_kbps``) and burst are in packets/s and packets, not
    kbit/s and kbit (the controller meter)."""

    meter_id: int
    rate_kbps: int = 0
    burst_kb: int | None = None
    command: str = "add"
    pktps: bool = False


@dataclass
class ReadRequest:
    """Ask the switch for state: ``flows`` (every flow of every table), ``meters``
    (every meter's configuration), ``session_stats`` (counters of the session rules),
    ``controller_meter`` (the controller meter's counters) or ``ports`` (port
    descriptions). ``xid``: the transaction id its reply will carry
    (None: the adapter picks one)."""

    what: str
    xid: int | None = None


@dataclass
class PacketOut:
    """Send a packet the switch handed to the controller out of ``out_port``
    (``OFPP_FLOOD`` floods); ``buffer_id`` None: ``data`` is the whole frame."""

    in_port: int
    out_port: int
    data: bytes = b""
    buffer_id: int | None = None


Message = FlowRule | MeterRule | ReadRequest | PacketOut


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


@dataclass(frozen=True)
class FiveTuple:
    """One direction of a session: addresses as bytes (4 or 16), ports, protocol."""

    version: int
    proto: int
    src: bytes
    sport: int
    dst: bytes
    dport: int

    @classmethod
    def of(cls, pv: PacketView) -> "FiveTuple":
        """The direction of a parsed packet."""
        return cls(pv.version, pv.proto, pv.src, pv.sport, pv.dst, pv.dport)

    def key(self) -> tuple:
        """The session's canonical bidirectional key: the same for both directions and
        the same as :meth:`classifier.packets.PacketView.session_key` of its packets
        (that method reads only the fields a FiveTuple shares: one implementation)."""
        return PacketView.session_key(self)[0]

    def reverse(self) -> "FiveTuple":
        return FiveTuple(self.version, self.proto, self.dst, self.dport, self.src, self.sport)

    def match(self) -> dict[str, Any]:
        """OpenFlow 1.3 match fields (Ryu ``OFPMatch`` keyword names)."""
        v4 = self.version == 4
        l4 = "tcp" if self.proto == PROTO_TCP else "udp"
        return {
            "eth_type": ETH_IPV4 if v4 else ETH_IPV6,
            "ip_proto": self.proto,
            ("ipv4_src" if v4 else "ipv6_src"): _addr(self.src),
            ("ipv4_dst" if v4 else "ipv6_dst"): _addr(self.dst),
            f"{l4}_src": self.sport,
            f"{l4}_dst": self.dport,
        }

    def text(self) -> str:
        p = "tcp" if self.proto == PROTO_TCP else "udp"
        s, d = _addr(self.src), _addr(self.dst)
        if self.version == 6:
            s, d = f"[{s}]", f"[{d}]"
        return f"{p} {s}:{self.sport} -> {d}:{self.dport}"


def base_pipeline(chatter_ports: Iterable[int] = ()) -> list[FlowRule]:
    """The rules installed when a switch connects (before any session rule)."""
    rules = [
        FlowRule(SESSION_TABLE, MISS_PRIORITY, {}, goto=FORWARD_TABLE, cookie=BASE_COOKIE),
        FlowRule(FORWARD_TABLE, MISS_PRIORITY, {}, actions=(("controller",),),
                 cookie=BASE_COOKIE),
    ]
    for eth in (ETH_IPV4, ETH_IPV6):
        for proto in (PROTO_TCP, PROTO_UDP):
            rules.append(FlowRule(SESSION_TABLE, MIRROR_PRIORITY,
                                  {"eth_type": eth, "ip_proto": proto},
                                  actions=(("controller",),), goto=FORWARD_TABLE,
                                  cookie=BASE_COOKIE))
    for port in sorted(set(int(p) for p in chatter_ports)):
        for eth in (ETH_IPV4, ETH_IPV6):
            for proto, l4 in ((PROTO_UDP, "udp"), (PROTO_TCP, "tcp")):
                for side in ("src", "dst"):
                    rules.append(FlowRule(SESSION_TABLE, CHATTER_PRIORITY,
                                          {"eth_type": eth, "ip_proto": proto,
                                           f"{l4}_{side}": port},
                                          goto=FORWARD_TABLE, cookie=BASE_COOKIE))
    return rules


def overload_rules(in_port: int, mac: str, action: str, seconds: int) -> list[FlowRule]:
    """A device over its new-session quota, for ``seconds``: what it sends on ``in_port``
    is no longer copied to the controller (``action`` ``forward``: goto table 1;
    ``drop``: dropped), nor is what is sent to it. Rules of its classified sessions
    (priority 100) and chatter (priority 3) still win."""
    common = dict(hard_timeout=max(1, int(seconds)), cookie=OVERLOAD_COOKIE)
    sent = FlowRule(SESSION_TABLE, OVERLOAD_PRIORITY, {"in_port": in_port, "eth_src": mac},
                    goto=None if action == "drop" else FORWARD_TABLE, **common)
    received = FlowRule(SESSION_TABLE, OVERLOAD_PRIORITY, {"eth_dst": mac},
                        goto=FORWARD_TABLE, **common)
    return [sent, received]


def controller_meter(rate_pps: int, burst: int | None = None) -> list[MeterRule]:
    """(Re)create the packet-in rate limit: OFPM_CONTROLLER, one drop band in packets/s.
    Deleted first so that it can be sent on every (re)connect. ``rate_pps`` 0: none."""
    msgs = [MeterRule(CONTROLLER_METER, command="delete")]
    if rate_pps and rate_pps > 0:
        msgs.append(MeterRule(CONTROLLER_METER, int(rate_pps), int(burst) if burst else None,
                              "add", pktps=True))
    return msgs


def mac_text(mac: bytes) -> str:
    """``02:00:00:00:00:01``: a MAC address as OpenFlow matches and policies write it."""
    return ":".join(f"{b:02x}" for b in mac)


def frame_macs(frame: bytes) -> tuple[str, str] | None:
    """(eth_src, eth_dst) of an Ethernet frame as text, None when it is too short.
    Plain slicing: never raises, whatever follows the 12 address bytes."""
    if not isinstance(frame, (bytes, bytearray)) or len(frame) < 14:
        return None
    return mac_text(frame[6:12]), mac_text(frame[0:6])


def flow_from_match(match: dict[str, Any]) -> "FiveTuple | None":
    """The :class:`FiveTuple` of an exact session-rule match (as read back from a
    switch), None when the match is not one."""
    try:
        eth, proto = match.get("eth_type"), match.get("ip_proto")
        if proto not in (PROTO_TCP, PROTO_UDP) or eth not in (ETH_IPV4, ETH_IPV6):
            return None
        v = 4 if eth == ETH_IPV4 else 6
        l4 = "tcp" if proto == PROTO_TCP else "udp"
        src = ipaddress.ip_address(match[f"ipv{v}_src"])
        dst = ipaddress.ip_address(match[f"ipv{v}_dst"])
        if src.version != v or dst.version != v:
            return None
        return FiveTuple(v, proto, src.packed, int(match[f"{l4}_src"]), dst.packed,
                         int(match[f"{l4}_dst"]))
    except (KeyError, ValueError, TypeError):
        return None


def clear_all() -> list[Message]:
    """Delete every flow and meter (a fresh start: the app has no state for them)."""
    return [FlowRule(0, 0, {}, command="delete_all"), MeterRule(0, command="delete_all")]


def session_rule(flow: FiveTuple, direction: int, sid: int, enforcement, meter_id: int | None,
                 use_queue: bool = True, device_mac: str | None = None,
                 device_side: int = 0) -> FlowRule:
    """The enforcement rule of one direction of a session. ``device_mac``: the LAN
    device's MAC, matched too (``eth_src`` in the direction it sends, ``eth_dst`` in
    the other; ``device_side`` 0: the device is the client) so that a controller
    restart can read the device back from the switch."""
    match = flow.match()
    if device_mac:
        match["eth_src" if direction == device_side else "eth_dst"] = device_mac
    common = dict(table=SESSION_TABLE, priority=SESSION_PRIORITY, match=match,
                  idle_timeout=int(enforcement.idle_timeout or 0),
                  hard_timeout=int(enforcement.hard_timeout or 0),
                  cookie=session_cookie(sid, direction), send_flow_rem=True)
    if enforcement.action == "drop":
        return FlowRule(**common)
    actions: list[tuple] = []
    if enforcement.dscp is not None:
        actions.append(("set_field", "ip_dscp", int(enforcement.dscp)))
    if use_queue and enforcement.queue_id is not None:
        actions.append(("set_queue", int(enforcement.queue_id)))
    return FlowRule(**common, actions=tuple(actions), goto=FORWARD_TABLE, meter=meter_id)


def session_rules(flow: FiveTuple, sid: int, enforcement, meter_id: int | None,
                  use_queue: bool = True, device_mac: str | None = None,
                  device_side: int = 0) -> list[FlowRule]:
    """Both directions: ``flow`` is the client->server direction (direction 0)."""
    return [session_rule(flow, 0, sid, enforcement, meter_id, use_queue, device_mac,
                         device_side),
            session_rule(flow.reverse(), 1, sid, enforcement, meter_id, use_queue,
                         device_mac, device_side)]


def forward_rule(in_port: int, eth_dst: str, out_port: int) -> FlowRule:
    return FlowRule(FORWARD_TABLE, FORWARD_PRIORITY, {"in_port": in_port, "eth_dst": eth_dst},
                    actions=(("output", out_port),), idle_timeout=FORWARD_IDLE_TIMEOUT)


@dataclass
class L2Learning:
    """The forwarding half: learn MAC -> port per switch, forward or flood."""

    tables: dict[int, dict[str, int]] = field(default_factory=dict)

    def packet(self, dpid: int, in_port: int, eth_src: str, eth_dst: str
               ) -> tuple[int, list[FlowRule]]:
        """(out port or OFPP_FLOOD, rules to install) for a table-1 miss."""
        table = self.tables.setdefault(dpid, {})
        if not (int(eth_src.split(":")[0], 16) & 1):   # never learn a multicast source
            table[eth_src] = in_port
        out = table.get(eth_dst)
        if out is None or out == in_port:
            return OFPP_FLOOD, []
        return out, [forward_rule(in_port, eth_dst, out)]

    def packet_in(self, dpid: int, in_port: int, frame: bytes, buffer_id: int | None = None
                  ) -> list[Message] | None:
        """A table-1 miss: the forwarding rule (once both ends are known) and the packet-out
        of this packet; None when the frame is too short to carry Ethernet addresses."""
        macs = frame_macs(frame)
        if macs is None:
            return None
        out, rules = self.packet(dpid, in_port, *macs)
        return [*rules, PacketOut(in_port, out, bytes(frame) if buffer_id is None else b"",
                                  buffer_id)]

    def relearn(self, dpid: int, flows: Iterable[FlowRule]) -> int:
        """Learn MAC -> port back from the forwarding rules read from a switch (after a
        controller restart); returns how many addresses were learnt."""
        table = self.tables.setdefault(dpid, {})
        n = 0
        for r in flows:
            if r.table != FORWARD_TABLE or r.priority != FORWARD_PRIORITY:
                continue
            dst = r.match.get("eth_dst")
            outs = [a[1] for a in r.actions if a and a[0] == "output"]
            if isinstance(dst, str) and len(outs) == 1 and outs[0] != OFPP_FLOOD:
                table[dst.lower()] = outs[0]
                n += 1
        return n

    def forget(self, dpid: int) -> None:
        self.tables.pop(dpid, None)
