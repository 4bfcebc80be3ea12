"""Per-device new-session quotas: one device's flood must not blind classification for
the others.

The switch's controller meter (``egw_packet_in_rate``) is one budget for every port: a
device that opens thousands of sessions a second takes nearly all of it, and the other
devices' packet-ins are dropped with its own. Each LAN device (ingress port + source MAC)
gets a token bucket of new sessions (``rate`` per second, ``burst``); a device that
empties it is *overloaded* for ``seconds``: the engine installs
:func:`rules.overload_rules` for it, so the switch stops copying its packets to the
controller (its packets are forwarded untracked, or dropped when the policy's
``on_overload`` says so) and the budget is left to the others. When the rules' hard
timeout ends, the device starts again with a full bucket and is judged afresh.

Bounded: at most ``max_devices`` buckets (least recently seen dropped first), so a
flood of spoofed MACs costs memory only up to that bound; the per-port limit
(``egw_max_mirroring_per_port``) stays as the backstop for that case.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    last: float


@dataclass
class Overload:
    in_port: int
    mac: str
    action: str          # forward | drop
    since: float
    until: float


class DeviceQuotas:
    """Token buckets of new sessions per (ingress port, MAC), and the devices overloaded."""

    def __init__(self, rate: float = 0.0, burst: float | None = None, seconds: float = 10.0,
                 max_devices: int = 4096):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, 4 * rate))
        self.seconds = float(seconds)
        self.max_devices = max_devices
        self.buckets: OrderedDict[tuple[int, str], _Bucket] = OrderedDict()
        self.overloaded: dict[tuple[int, str], Overload] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def is_overloaded(self, key: tuple[int, str], now: float) -> bool:
        o = self.overloaded.get(key)
        return o is not None and now < o.until

    def take(self, key: tuple[int, str], now: float) -> bool:
        """One new session of device ``key`` at ``now``: True when within its quota."""
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = _Bucket(self.burst, now)
            while len(self.buckets) > self.max_devices:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(key)
            b.tokens = min(self.burst, b.tokens + (now - b.last) * self.rate)
            b.last = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        return False

    def overload(self, key: tuple[int, str], action: str, now: float) -> Overload:
        o = self.overloaded[key] = Overload(key[0], key[1], action, now, now + self.seconds)
        return o

    def expire(self, now: float) -> list[Overload]:
        """The overloads whose time is over (their rules timed out on the switch); those
        devices start again with a full bucket."""
        done = [o for o in self.overloaded.values() if now >= o.until]
        for o in done:
            key = (o.in_port, o.mac)
            del self.overloaded[key]
            self.buckets.pop(key, None)
        return done

    def clear(self) -> None:
        self.buckets.clear()
        self.overloaded.clear()

    def describe(self, now: float) -> list[dict]:
        return [{"in_port": o.in_port, "mac": o.mac, "action": o.action,
                 "since": round(o.since, 3), "seconds_left": round(max(0.0, o.until - now), 3)}
                for o in self.overloaded.values()]
