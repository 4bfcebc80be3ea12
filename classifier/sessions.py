"""Session splitting: bidirectional 5-tuple sessions (or unidirectional flows) with an idle timeout.

A session is keyed by (IP version, protocol, both endpoints) and ends when no
packet arrived for ``idle_timeout`` seconds; the next packet with that key starts
a new session. The client is the endpoint that sent the session's first packet:
its packets get direction 0, the others 1 (the convention of
``Preprocess.vectorize``). Only TCP and UDP packets over IPv4/IPv6 are kept
(non-first fragments have no ports and are dropped); everything else is counted
in ``SplitStats``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from classifier.packets import PROTO_TCP, PROTO_UDP, PacketView, parse


@dataclass
class Session:
    key: tuple
    first_dir: int                 # canonical direction of the first packet (see PacketView.session_key)
    start: float
    last: float
    packets: list = field(default_factory=list)   # (ts, ip_bytes, direction)
    views: list = field(default_factory=list)     # PacketView per packet (same order)

    def as_tuples(self) -> list[tuple[float, bytes, int]]:
        return list(self.packets)


@dataclass
class SplitStats:
    packets: int = 0
    not_ip: int = 0
    not_tcp_udp: int = 0
    sessions: int = 0


def split_sessions(packets: Iterable[tuple[float, bytes]], idle_timeout: float = 60.0,
                   bidirectional: bool = True, stats: SplitStats | None = None) -> list[Session]:
    """Group ``(timestamp, ip_bytes)`` packets into sessions, ordered by start time."""
    active: dict[tuple, Session] = {}
    done: list[Session] = []
    st = stats if stats is not None else SplitStats()
    for ts, ip in packets:
        st.packets += 1
        pv = parse(ip)
        if pv is None:
            st.not_ip += 1
            continue
        if (pv.proto != PROTO_TCP and pv.proto != PROTO_UDP) or pv.fragment:
            st.not_tcp_udp += 1
            continue
        if bidirectional:
            key, d = pv.session_key()
        else:
            key, d = pv.flow_key(), 0
        s = active.get(key)
        if s is not None and ts - s.last > idle_timeout:
            done.append(s)
            s = None
        if s is None:
            s = Session(key=key, first_dir=d, start=ts, last=ts)
            active[key] = s
        s.last = ts if ts > s.last else s.last
        s.packets.append((ts, ip, 0 if d == s.first_dir else 1))
        s.views.append(pv)
    done.extend(active.values())
    done.sort(key=lambda s: s.start)
    st.sessions = len(done)
    return done


