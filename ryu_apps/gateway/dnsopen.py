"""Hosts a quarantined device named in DNS answers (pure logic: frames in, rules out).

A quarantined device may reach DHCP, DNS and NTP only (:mod:`ryu_apps.gateway.devices`).
With ``allow_dns_named`` (its ``device_types`` entry; default on) table 0 also copies its
DNS to the controller while forwarding it: the queries it sends (``eth_src`` = its MAC,
UDP/TCP destination port 53) and the answers it receives (``eth_dst`` = its MAC, source
port 53). :class:`DnsOpener` reads them and opens, for a while, the addresses an answer
gives for a name the device asked for:

- a **query** counts when it comes in on the device's own port and asks one question of
  class IN, type A or AAAA; it waits ``QUERY_WAIT`` seconds for its answer, at most
  ``MAX_PENDING`` per device (the oldest forgotten first);
- an **answer** counts when it comes in on another port than the device's (a device
  cannot open hosts by answering itself), comes from the address and port the query
  went to, to the device's address and port, with the query's DNS id, question name,
  type and class, and is the first answer to that query (an identical repeat is
  ignored, any other one refused). Anything else is counted and ignored, never raised:
  the header is checked before the message is parsed (by dnspython, which refuses
  compression loops, pointers out of range and counts beyond the data);
- the addresses are those of the A/AAAA records of the question name, or of the names
  its CNAME chain leads to (at most ``MAX_CHAIN`` links), in the answer section; an
  address that is no host (multicast, loopback, unspecified, reserved) is skipped;
- each address gets a rule ``eth_src`` = device, ``eth_dst`` = the MAC the answer came
  from (the next hop towards the resolver: a LAN host named in an answer, which the
  device would reach through its own MAC, stays closed), ``ipv4_dst``/``ipv6_dst`` =
  the address -> table 1, at ``QUARANTINE_OPEN_PRIORITY`` (under the DHCP/DNS/NTP rules,
  so a query to an opened address is still copied; above the drop), cookie the
  device's, idle timeout the record's TTL (no longer than the CNAME links that led to
  it) bounded to ``[MIN_TTL, MAX_TTL]``, hard
  timeout ``OPEN_SECONDS`` (an hour after the answer that opened it, even in use). A
  later answer for the same address refreshes it (the rule is sent again);
- at most ``MAX_OPEN`` hosts per device: past it the host refreshed longest ago is
  closed (its rule deleted) to make room.

Replies from an opened host pass as every packet *to* a quarantined device does: the
quarantine rules match what it sends. Opened hosts live in memory only: they are not
persisted; after a controller restart the read-back deletes their rules and the next
DNS answer opens them again (a device that still holds the answer in its cache waits
until it asks again).

What this does not protect against: a device whose author controls a DNS zone can name
any address in it (this contains unknown or confused devices, not hostile ones); an
attacker who can see the query (or guess its 16-bit id and port) and answer from the
resolver's address before the resolver does; DNS the gateway does not see (DNS over
TLS or HTTPS is not port 53; those stay closed). Answers split over several TCP
segments or IP fragments are not reassembled: they count as malformed and open nothing.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import dns.message
import dns.rdatatype

from classifier.packets import ETH_IPV4, ETH_IPV6, PROTO_TCP, PROTO_UDP, ip_from_frame, parse

from .metrics import dp_label
from .rules import FORWARD_TABLE, SESSION_TABLE, FlowRule

log = logging.getLogger("egw.devices")

DNS_PORT = 53
QUARANTINE_OPEN_PRIORITY = 305
QUERY_WAIT = 10.0
MAX_PENDING = 16
MAX_OPEN = 64
MIN_TTL, MAX_TTL = 30, 3600
OPEN_SECONDS = 3600
MAX_CHAIN = 8
MAX_QUERY_BYTES = 1232
#: a refused answer or query is written to the decision log at most once per device,
#: result and this many seconds (every one is counted)
AUDIT_EVERY = 60.0
_TYPES = {1: 4, 28: 6}             # A, AAAA -> IP version
_CLASS_IN = 1


def dns_payload(pv) -> bytes | None:
    """The DNS message of a UDP datagram or of one TCP segment that holds a whole
    length-prefixed message; None for a TCP segment without payload (SYN, ACK);
    ``b""`` for one that does not hold a whole message."""
    data = pv.payload
    if pv.proto == PROTO_UDP:
        return data
    if not data:
        return None
    if len(data) < 2 or int.from_bytes(data[:2], "big") != len(data) - 2:
        return b""
    return data[2:]


@dataclass
class Pending:
    qname: object            # dns.name.Name
    qtype: int
    until: float
    answered: bytes | None = None      # digest of the answer taken


@dataclass
class OpenHost:
    address: str
    version: int
    via: str                 # eth_dst: the MAC the answer came from
    name: str
    idle: int                # idle timeout (the record's TTL, bounded)
    opened: float
    until: float             # hard timeout at

    def rule(self, mac: str, cookie: int, copy: bool, now: float,
             command: str = "add") -> FlowRule:
        m = {"eth_src": mac, "eth_dst": self.via,
             "eth_type": ETH_IPV4 if self.version == 4 else ETH_IPV6,
             "ipv4_dst" if self.version == 4 else "ipv6_dst": self.address}
        return FlowRule(SESSION_TABLE, QUARANTINE_OPEN_PRIORITY, m,
                        actions=(("controller",),) if copy else (), goto=FORWARD_TABLE,
                        idle_timeout=self.idle, hard_timeout=max(1, int(self.until - now + 0.999)),
                        cookie=cookie, command=command)

    def view(self) -> dict:
        return {"address": self.address, "name": self.name, "via": self.via,
                "idle_timeout": self.idle, "opened": self.opened, "closes_by": self.until}


def _drop_old(book: OrderedDict, now: float) -> None:
    """Forget the questions and hosts (anything with ``until``) whose time is over."""
    for k in [k for k, v in book.items() if v.until <= now]:
        del book[k]


def _host(rdata) -> tuple[str, int] | None:
    a = ipaddress.ip_address(rdata.address)
    if a.is_multicast or a.is_loopback or a.is_unspecified or a.is_reserved:
        return None
    return str(a), a.version


class DnsOpener:
    """Per device: the DNS questions in flight and the hosts their answers opened.
    ``cookie(mac)``: the device rules' cookie; ``metrics``: the process's
    :class:`~ryu_apps.gateway.metrics.Metrics` (or None); ``audit``: ``DecisionLog.write``."""

    def __init__(self, cookie: Callable[[str], int], metrics=None, audit=None,
                 logger: logging.Logger | None = None):
        self.cookie, self.metrics, self.audit = cookie, metrics, audit
        self.log = logger or log
        self.pending: dict[str, OrderedDict] = {}
        self.opened: dict[str, OrderedDict] = {}
        self._audited: dict[tuple[str, str], float] = {}

    # ---- frames ----------------------------------------------------------------
    def frame(self, mac: str, dev_port: int, dpid: int, in_port: int, frame: bytes,
              sent: bool, copy: bool, now: float) -> list[FlowRule]:
        """A frame of the quarantined device ``mac`` (on ``dev_port``) copied to the
        controller: ``sent`` by it, else sent to it. Returns the rules an accepted answer
        opens (``copy``: they copy to the controller too, while it is identified).
        Never raises."""
        msg, rules = "query" if sent else "answer", []
        try:
            ip = ip_from_frame(frame)
            pv = parse(ip) if ip is not None else None
            if (pv is None or pv.proto not in (PROTO_UDP, PROTO_TCP)
                    or (pv.dport if sent else pv.sport) != DNS_PORT):
                return []
            if pv.fragment:
                result = "malformed"
            elif sent:
                result = self._query(mac, dev_port, in_port, pv, now)
            else:
                result, rules = self._answer(mac, dev_port, dpid, in_port, frame, pv, copy, now)
        except Exception as exc:       # hostile input must never stop the packet path
            self.log.debug("device %s: DNS %s not read: %r", mac, msg, exc)
            result, rules = "malformed", []
        self._count(dpid, mac, msg, result, now)
        return rules

    def _query(self, mac: str, dev_port: int, in_port: int, pv, now: float) -> str | None:
        if in_port != dev_port:
            return "other_port"
        wire = dns_payload(pv)
        if wire is None:
            return None
        if len(wire) < 12 or len(wire) > MAX_QUERY_BYTES:
            return "malformed"
        if wire[2] & 0xF8 or wire[4:6] != b"\x00\x01":     # QR 0, opcode QUERY, one question
            return "ignored"
        q = dns.message.from_wire(wire, question_only=True).question[0]
        if q.rdtype not in _TYPES or q.rdclass != _CLASS_IN:
            return "ignored"
        key = (pv.proto, pv.src, pv.sport, pv.dst, wire[:2])
        book = self.pending.setdefault(mac, OrderedDict())
        _drop_old(book, now)
        book.pop(key, None)
        book[key] = Pending(q.name, q.rdtype, now + QUERY_WAIT)
        while len(book) > MAX_PENDING:
            book.popitem(last=False)
        return "recorded"

    def _answer(self, mac: str, dev_port: int, dpid: int, in_port: int, frame: bytes, pv,
                copy: bool, now: float) -> tuple[str | None, list[FlowRule]]:
        if in_port == dev_port:
            return "own_port", []
        wire = dns_payload(pv)
        if wire is None:
            return None, []
        if len(wire) < 12:
            return "malformed", []
        book = self.pending.get(mac)
        if book is not None:
            _drop_old(book, now)
        p = book.get((pv.proto, pv.dst, pv.dport, pv.src, wire[:2])) if book else None
        if p is None or not wire[2] & 0x80:
            return "unsolicited", []
        digest = hashlib.blake2b(wire, digest_size=16).digest()
        if p.answered is not None:
            return (None if p.answered == digest else "unsolicited"), []
        m = dns.message.from_wire(wire)
        if (m.opcode() != 0 or len(m.question) != 1 or m.question[0].name != p.qname
                or m.question[0].rdtype != p.qtype or m.question[0].rdclass != _CLASS_IN):
            return "unsolicited", []
        p.answered = digest
        if m.rcode() != 0:
            return "no_address", []
        # the question name and its CNAME chain; an address lives no longer than any link
        names, chain_ttl, found = {p.qname}, MAX_TTL, {}
        for _ in range(MAX_CHAIN):
            links = [rr for rr in m.answer if rr.name in names and rr.rdclass == _CLASS_IN
                     and rr.rdtype == dns.rdatatype.CNAME]
            more = {r.target for rr in links for r in rr} - names
            if not more:
                break
            names |= more
            chain_ttl = min([chain_ttl] + [rr.ttl for rr in links])
        for rr in m.answer:
            if rr.name in names and rr.rdtype in _TYPES and rr.rdclass == _CLASS_IN:
                for h in filter(None, map(_host, rr)):
                    found[h] = min(rr.ttl, chain_ttl, found.get(h, MAX_TTL))
        if not found:
            return "no_address", []
        via = ":".join(f"{b:02x}" for b in frame[6:12])
        return "opened", self._open(mac, dpid, via, p.qname.to_text(omit_final_dot=True),
                                    list(found.items()), copy, now)

    # ---- opened hosts ----------------------------------------------------------
    def _open(self, mac: str, dpid: int, via: str, name: str, found, copy: bool, now: float
              ) -> list[FlowRule]:
        book = self.opened.setdefault(mac, OrderedDict())
        _drop_old(book, now)
        rules, opened, idle, evicted = [], [], [], []
        for (addr, version), ttl in found[:MAX_OPEN]:
            key = (addr, via)
            fresh = key not in book
            h = book.pop(key, None) or OpenHost(addr, version, via, name, 0, now, 0.0)
            h.name, h.idle, h.until = name, min(MAX_TTL, max(MIN_TTL, int(ttl))), now + OPEN_SECONDS
            book[key] = h                      # last: refreshed most recently
            rules.append(h.rule(mac, self.cookie(mac), copy, now))
            opened.append(addr)
            idle.append(h.idle)
            self._count_host(dpid, "opened" if fresh else "refreshed")
        while len(book) > MAX_OPEN:
            _k, old = book.popitem(last=False)
            rules.append(old.rule(mac, self.cookie(mac), copy, now, command="delete"))
            evicted.append(old.address)
            self._count_host(dpid, "evicted")
        self.log.info("device %s: %s named %s in a DNS answer: opened%s", mac, name,
                      ", ".join(opened), f" (closed {', '.join(evicted)}: over {MAX_OPEN})"
                      if evicted else "")
        if self.audit is not None:
            self.audit("device-dns-open", mac=mac, name=name, addresses=opened, via=via,
                       idle_timeout=idle,
                       hard_timeout=OPEN_SECONDS, evicted=evicted, open_hosts=len(book))
        return rules

    def rules(self, mac: str, copy: bool, now: float, command: str = "add") -> list[FlowRule]:
        """The rules of the hosts open for ``mac`` now (sent again after a switch
        reconnects, or when the device's copy state changes)."""
        book = self.opened.get(mac)
        if not book:
            return []
        _drop_old(book, now)
        return [h.rule(mac, self.cookie(mac), copy, now, command) for h in book.values()]

    def forget(self, mac: str) -> None:
        """Approval, release or ``allow_dns_named: false``: nothing open any more (take
        :meth:`rules` with ``command='delete'`` first)."""
        self.pending.pop(mac, None)
        self.opened.pop(mac, None)

    def view(self, mac: str, now: float) -> list[dict]:
        book = self.opened.get(mac)
        if not book:
            return []
        _drop_old(book, now)
        return [h.view() for h in book.values()]

    def tick(self, now: float) -> None:
        for book in (*self.pending.values(), *self.opened.values()):
            _drop_old(book, now)
        self._audited = {k: t for k, t in self._audited.items() if now - t < AUDIT_EVERY}

    # ---- counting ----------------------------------------------------------------
    def _count_host(self, dpid: int, event: str) -> None:
        if self.metrics is not None:
            self.metrics.quarantine_hosts.labels(dp_label(dpid), event).inc()

    def _count(self, dpid: int, mac: str, msg: str, result: str | None, now: float) -> None:
        """Count one query or answer by result (None: no DNS message, e.g. a bare TCP
        ACK, or a repeat of the answer taken: not counted); refusals also go to the
        decision log, once per device, result and minute."""
        if result is None:
            return
        if self.metrics is not None:
            self.metrics.quarantine_dns.labels(dp_label(dpid), msg, result).inc()
        if result in ("recorded", "opened"):
            return
        self.log.debug("device %s: DNS %s %s", mac, msg, result)
        key = (mac, f"{msg}:{result}")
        if self.audit is not None and now - self._audited.get(key, -AUDIT_EVERY) >= AUDIT_EVERY:
            self._audited[key] = now
            self.audit("device-dns-refused", mac=mac, message=msg, result=result)
