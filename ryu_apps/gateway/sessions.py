"""The bounded session table.

A session is one bidirectional 5-tuple conversation (TCP or UDP). Its client is the
side that sent the first packet the gateway saw (direction 0, as offline).
States: ``mirroring`` (packets are copied to the controller and kept) ->
``pending`` (ready: waiting for the next classification batch) -> ``enforced``
(its two rules are installed; packets are no longer kept) -> removed when both
rules are gone (flow-removed) or the table evicts it.
"""
from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from classifier.packets import PROTO_TCP

from .rules import FiveTuple

MIRRORING = "mirroring"
PENDING = "pending"
ENFORCED = "enforced"


@dataclass
class Session:
    sid: int
    key: tuple
    flow: FiveTuple                  # client -> server
    client_mac: str
    server_mac: str
    client_port: int
    first_ts: float
    last_ts: float
    device_mac: str | None = None    # the LAN side (policy device lookup)
    device_ip: str | None = None
    state: str = MIRRORING
    #: mirrored packets as parsed once at packet-in: (ts, PacketView, direction)
    packets: list[tuple[float, Any, int]] = field(default_factory=list)
    #: the model's ``Preprocess.readiness()`` fed with ``packets`` (None: no model)
    readiness: Any = None
    mirrored: int = 0                # packet-ins of this session while mirroring
    duplicates: int = 0              # packet-ins after its rules were sent
    label: str | None = None
    confidence: float = 0.0
    ood_score: float | None = None   # the bundle's out-of-distribution score (None: none)
    reason: str = ""                 # model | cap | no-data | error
    enforcement: Any = None
    meter_id: int | None = None
    classified_ts: float | None = None
    rules_alive: list[bool] = field(default_factory=lambda: [False, False])
    # counters of removed rules (flow-removed) + of the live rules (flow stats)
    packet_base: list[int] = field(default_factory=lambda: [0, 0])
    byte_base: list[int] = field(default_factory=lambda: [0, 0])
    packet_live: list[int] = field(default_factory=lambda: [0, 0])
    byte_live: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def packet_count(self) -> list[int]:
        return [self.packet_base[i] + self.packet_live[i] for i in (0, 1)]

    @property
    def byte_count(self) -> list[int]:
        return [self.byte_base[i] + self.byte_live[i] for i in (0, 1)]

    @property
    def device(self) -> tuple[str | None, int]:
        """(device MAC, its side: 0 client, 1 server) as the session rules match it."""
        return self.device_mac, 0 if self.device_mac == self.client_mac else 1

    def direction(self, src: bytes, sport: int) -> int:
        return 0 if (src, sport) == (self.flow.src, self.flow.sport) else 1

    def view(self) -> dict[str, Any]:
        e = self.enforcement
        return {
            "id": self.sid,
            "proto": "tcp" if self.flow.proto == PROTO_TCP else "udp",
            "client": f"{ipaddress.ip_address(self.flow.src)}",
            "client_port": self.flow.sport,
            "server": f"{ipaddress.ip_address(self.flow.dst)}",
            "server_port": self.flow.dport,
            "client_mac": self.client_mac,
            "device_mac": self.device_mac,
            "device_ip": self.device_ip,
            "state": self.state,
            "class": self.label,
            "confidence": round(self.confidence, 4),
            "ood_score": None if self.ood_score is None else round(self.ood_score, 4),
            "reason": self.reason,
            "action": e.action if e is not None else None,
            "policy_entry": getattr(e, "cls", None),
            "dscp": getattr(e, "dscp", None),
            "rate_kbps": getattr(e, "rate_kbps", None),
            "meter_id": self.meter_id,
            "enforcement": e.describe() if e is not None and hasattr(e, "describe") else None,
            "mirrored_packets": self.mirrored,
            "first_seen": self.first_ts,
            "classified_at": self.classified_ts,
            "packets": sum(self.packet_count),
            "bytes": sum(self.byte_count),
            "packets_by_direction": list(self.packet_count),
            "bytes_by_direction": list(self.byte_count),
            "rules_alive": list(self.rules_alive),
        }


class SessionTable:
    """Sessions by canonical key and by id, bounded: when ``max_sessions`` is reached
    the least recently created session that is not enforced yet (mirroring or
    pending: it has no rule on the switch) is evicted first, so a flood of new
    sessions cannot push out the enforced sessions of other devices; only when every
    session is enforced does the oldest enforced one go."""

    def __init__(self, max_sessions: int = 10000):
        self.max_sessions = max_sessions
        self.by_key: OrderedDict[tuple, Session] = OrderedDict()
        self.by_id: dict[int, Session] = {}
        self.unenforced: OrderedDict[tuple, Session] = OrderedDict()
        self._next_id = 1
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.by_key)

    def __iter__(self):
        return iter(list(self.by_key.values()))

    def get(self, key: tuple) -> Session | None:
        return self.by_key.get(key)

    def create(self, key: tuple, **kw) -> tuple[Session, list[Session]]:
        """A new session; returns it and the sessions evicted to make room."""
        evicted = []
        while len(self.by_key) >= self.max_sessions:
            if self.unenforced:
                _k, old = self.unenforced.popitem(last=False)
                self.by_key.pop(old.key, None)
            else:
                _k, old = self.by_key.popitem(last=False)
            self.by_id.pop(old.sid, None)
            evicted.append(old)
            self.evicted += 1
        sid = kw.pop("sid", None)
        if sid is None:
            sid = self.new_id()
        s = Session(sid=sid, key=key, **kw)
        self.by_key[key] = s
        self.by_id[sid] = s
        if s.state != ENFORCED:
            self.unenforced[key] = s
        return s, evicted

    def new_id(self) -> int:
        sid = self._next_id
        while sid in self.by_id:        # after a restore, skip ids still in use
            sid = sid + 1 if sid < (1 << 46) else 1
        self._next_id = sid + 1 if sid < (1 << 46) else 1
        return sid

    def set_state(self, s: Session, state: str) -> None:
        s.state = state
        if state == ENFORCED:
            if self.unenforced.get(s.key) is s:
                del self.unenforced[s.key]
        elif self.by_key.get(s.key) is s:
            self.unenforced[s.key] = s

    def clear(self) -> None:
        """Forget every session (the switch state they belonged to is gone)."""
        self.by_key.clear()
        self.by_id.clear()
        self.unenforced.clear()

    def detach_ids(self) -> list[Session]:
        """Before a restore: take every session out of the id index (it stays in the
        table) so that the restored sessions get their ids back from the switch's
        cookies; :meth:`reattach` gives the detached ones new ids afterwards."""
        detached = list(self.by_id.values())
        self.by_id.clear()
        return detached

    def reattach(self, sessions: list[Session]) -> None:
        """New ids, above every restored one, for sessions :meth:`detach_ids` took out."""
        if self.by_id:
            top = max(self.by_id)
            if top >= self._next_id:
                self._next_id = top + 1 if top < (1 << 46) else 1
        for s in sessions:
            s.sid = self.new_id()
            self.by_id[s.sid] = s

    def remove(self, s: Session) -> None:
        if self.by_key.get(s.key) is s:
            del self.by_key[s.key]
        if self.unenforced.get(s.key) is s:
            del self.unenforced[s.key]
        self.by_id.pop(s.sid, None)
