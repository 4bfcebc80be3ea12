"""Meter ids: one per class-scope key (shared, created once and reused), one per
session for session-scope limits (freed with the session)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .rules import MeterRule


@dataclass
class _Meter:
    meter_id: int
    key: tuple
    rate_kbps: int
    burst_kb: int | None
    users: set[int] = field(default_factory=set)   # session ids

    def rule(self, command: str = "add") -> MeterRule:
        return MeterRule(self.meter_id, self.rate_kbps, self.burst_kb, command)


class MeterTable:
    """Allocates meter ids for :attr:`Enforcement.meter_key` values.

    Class-scope meters (``key[0] == 'class'``) are shared by every session with that
    key and stay installed until :meth:`collect` finds them unused (after a policy
    reload); session-scope meters are keyed by the session and deleted when the
    session releases them.
    """

    def __init__(self, first_id: int = 1, max_meters: int = 65535):
        self._next = first_id
        self._first = first_id
        self._max = max_meters
        self._free: list[int] = []
        self.by_key: dict[tuple, _Meter] = {}

    def __len__(self) -> int:
        return len(self.by_key)

    def _alloc(self) -> int:
        if self._free:
            return self._free.pop()
        if self._next > self._max:
            raise RuntimeError("no meter id left")
        mid = self._next
        self._next += 1
        return mid

    def reserve(self, ids) -> None:
        """Meter ids already on the switch (after a restore): never handed out again
        while in use; the next fresh id is above them."""
        ids = set(ids)
        self._free = [i for i in self._free if i not in ids]
        if ids:
            self._next = max(self._next, max(ids) + 1)

    def adopt(self, meter_key: tuple | None, meter_id: int, rate_kbps: int,
              burst_kb: int | None, sid: int) -> None:
        """A meter found on the switch after a restore, used by session ``sid``: kept
        under its id, keyed like :meth:`acquire` would key it (class meters under their
        class key, so that new sessions of the class reuse it); a second switch meter
        for one key, or one without a key, is kept apart (``("restored", id)``)."""
        key = (("restored", meter_id) if meter_key is None
               else meter_key if meter_key[0] == "class" else (*meter_key, sid))
        m = self.by_key.get(key)
        if m is not None and m.meter_id != meter_id:
            key, m = ("restored", meter_id), self.by_key.get(("restored", meter_id))
        if m is None:
            m = self.by_key[key] = _Meter(meter_id, key, rate_kbps, burst_kb)
        m.users.add(sid)

    def acquire(self, meter_key: tuple | None, sid: int) -> tuple[int | None, list[MeterRule]]:
        """(meter id or None, messages to send) for session ``sid``."""
        if meter_key is None:
            return None, []
        key = meter_key if meter_key[0] == "class" else (*meter_key, sid)
        m = self.by_key.get(key)
        msgs: list[MeterRule] = []
        if m is None:
            rate, burst = meter_key[-2], meter_key[-1]
            m = _Meter(self._alloc(), key, int(rate), burst)
            self.by_key[key] = m
            msgs.append(m.rule("add"))
        m.users.add(sid)
        return m.meter_id, msgs

    def release(self, sid: int, meter_id: int | None) -> list[MeterRule]:
        """Session ``sid`` no longer uses ``meter_id``: session meters are deleted."""
        if meter_id is None:
            return []
        for key, m in list(self.by_key.items()):
            if m.meter_id == meter_id:
                m.users.discard(sid)
                if key[0] != "class" and not m.users:
                    del self.by_key[key]
                    self._free.append(m.meter_id)
                    return [m.rule("delete")]
        return []

    def collect(self) -> list[MeterRule]:
        """Delete class meters no session uses (after a policy reload)."""
        out = []
        for key, m in list(self.by_key.items()):
            if not m.users:
                del self.by_key[key]
                self._free.append(m.meter_id)
                out.append(m.rule("delete"))
        return out

    def all_rules(self) -> list[MeterRule]:
        """Every current meter as an ``add`` (re-installation after a reconnect)."""
        return [m.rule("add") for m in sorted(self.by_key.values(), key=lambda m: m.meter_id)]

    def describe(self) -> list[dict]:
        return [{"meter_id": m.meter_id, "scope": m.key[0],
                 "class": m.key[1] if m.key[0] == "class" else None,
                 "rate_kbps": m.rate_kbps, "burst_kb": m.burst_kb, "sessions": len(m.users)}
                for m in sorted(self.by_key.values(), key=lambda m: m.meter_id)]
