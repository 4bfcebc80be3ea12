"""Controller restart, the pure part: read a switch's state back and adopt it.

On the first connection of a switch the engine (``switch_connected(fresh=True,
readback=True)``) keeps the switch's rules (established sessions keep flowing) and
asks for every flow and meter. :class:`ReadBack` is that read-back in flight: the
two requests' transaction ids, the reply parts received so far and the deadline.
While one is in flight the engine classifies nothing (no meter id may be handed
out before the switch's meters are known). When both replies are complete
:func:`adopt` turns the session rules back into enforced sessions; when the
deadline passes the engine clears the switch and starts afresh; when the switch
reconnects before either, the read-back is asked again on the new connection.
"""
from __future__ import annotations

import ipaddress
import itertools
import random
from collections import defaultdict
from typing import TYPE_CHECKING

from classifier.bundle import UNKNOWN
from policies.enforcement import Enforcement

from .rules import (BASE_COOKIE, CONTROLLER_METER, SESSION_PRIORITY, SESSION_TABLE,
                    FiveTuple, FlowRule, Message, MeterRule, ReadRequest, decode_cookie,
                    flow_from_match, session_rule)
from .sessions import ENFORCED

if TYPE_CHECKING:  # pragma: no cover
    from .engine import GatewayEngine

#: Transaction ids of read-back requests (Ryu numbers its own from a random start too).
_XIDS = itertools.count(random.randrange(1 << 20, 1 << 31))


class ReadBack:
    """One read-back in flight: flows and meters requested, replies gathered until
    both are complete (multipart replies may come in several parts)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.xids = {"flows": next(_XIDS), "meters": next(_XIDS)}
        self.flows: list[FlowRule] = []
        self.meters: list[MeterRule] = []
        self.pending = {"flows", "meters"}

    def requests(self) -> list[ReadRequest]:
        return [ReadRequest(kind, xid) for kind, xid in self.xids.items()]

    def awaits(self, kind: str, xid: int) -> bool:
        return kind in self.pending and self.xids.get(kind) == xid

    def reply(self, kind: str, xid: int, items: list, more: bool) -> bool:
        """Record one reply part (``kind``: flows | meters); True once both replies are
        complete. A reply to another request (another xid) is ignored."""
        if not self.awaits(kind, xid):
            return False
        getattr(self, kind).extend(items)
        if not more:
            self.pending.discard(kind)
        return not self.pending

    def expired(self, now: float) -> bool:
        return now >= self.deadline


def adopt(eng: "GatewayEngine", flows: list[FlowRule], meters: list[MeterRule],
          labels=(), now: float = 0.0) -> list[Message]:
    """Re-learn the switch's state after a controller restart.

    ``flows``: every flow entry read back; ``meters``: every meter. Session rules (our
    cookie) become enforced sessions again under their ids: their class is found by
    matching the rule against the running policy's enforcement for each of ``labels``
    (+ ``unknown``, see :func:`recognise`). The meters they use are adopted under the
    same ids (class meters under their class key, so new sessions of that class reuse
    them); anything else in table 0 that is not ours, and meters no rule uses, are
    deleted. Sessions seen while the read-back was on its way get new ids above the
    restored ones. Returns the deletes."""
    msgs: list[Message] = []
    cfg = {m.meter_id: m for m in meters if m.meter_id != CONTROLLER_METER}
    groups, stale = _session_rules(flows)
    used: dict[int, set[int]] = defaultdict(set)     # meter id -> session ids
    restored = 0
    waiting = eng.table.detach_ids()
    for sid, dirs in sorted(groups.items()):
        flow, meter_id = _session_of(dirs, cfg)
        if flow is None or eng.table.get(flow.key()) is not None:
            stale += list(dirs.values())
            continue
        mac, side = _device_of(dirs)
        device_ip = str(ipaddress.ip_address(flow.src if side == 0 else flow.dst))
        label, enf = recognise(eng.enforce, dirs.get(0) or dirs[1], flow, meter_id, cfg,
                               labels, eng.use_queue, mac, device_ip)
        ports = eng.l2.tables.get(eng.dp_id, {})
        s, evicted = eng.table.create(
            flow.key(), sid=sid, flow=flow, client_mac=(mac or "") if side == 0 else "",
            server_mac=(mac or "") if side == 1 else "",
            client_port=ports.get(mac, -1) if side == 0 else (eng.wan_port or -1),
            first_ts=now, last_ts=now, state=ENFORCED)
        for old in evicted:
            msgs += eng.forget(old, "evicted")
        s.device_mac, s.device_ip = mac, device_ip
        s.label, s.confidence, s.reason = label, 0.0, "restored"
        s.enforcement, s.meter_id, s.classified_ts = enf, meter_id, now
        s.rules_alive = [0 in dirs, 1 in dirs]
        for d, r in dirs.items():         # what the switch counted so far
            s.packet_live[d], s.byte_live[d] = r.packet_count, r.byte_count
        if meter_id is not None:
            used[meter_id].add(sid)
            c = cfg[meter_id]
            eng.meters.adopt(enf.meter_key, meter_id, int(c.rate_kbps), c.burst_kb, sid)
        eng.stats_started(label)
        eng._log_decision(s, "restored")
        restored += 1
    eng.table.reattach(waiting)
    eng.meters.reserve(used)
    unused = [mid for mid in sorted(cfg) if mid not in used]
    msgs += [MeterRule(mid, command="delete") for mid in unused]
    msgs += [FlowRule(r.table, r.priority, dict(r.match), command="delete") for r in stale]
    eng.count_restore(restored, len(stale), len(unused))
    return msgs


def _session_rules(flows: list[FlowRule]) -> tuple[dict[int, dict[int, FlowRule]], list]:
    """Table-0 rules by session id and direction; the other non-base table-0 rules."""
    groups: dict[int, dict[int, FlowRule]] = {}
    stale: list[FlowRule] = []
    for r in flows:
        if r.table != SESSION_TABLE or r.cookie == BASE_COOKIE:
            continue
        dec = decode_cookie(r.cookie)
        if dec is None or r.priority != SESSION_PRIORITY:
            stale.append(r)
        else:
            groups.setdefault(dec[0], {})[dec[1]] = r
    return groups, stale


def _session_of(dirs: dict[int, FlowRule], cfg: dict[int, MeterRule]
                ) -> tuple[FiveTuple | None, int | None]:
    """(client->server flow, meter id) of one session's rules; flow None when the
    rules do not make one consistent session (other 5-tuples, meters, unknown meter)."""
    f0 = flow_from_match(dirs[0].match) if 0 in dirs else None
    f1 = flow_from_match(dirs[1].match) if 1 in dirs else None
    flow = f0 or (f1.reverse() if f1 else None)
    meter_ids = {r.meter for r in dirs.values()}
    meter_id = next(iter(meter_ids))
    if (flow is None or (f1 is not None and f1 != flow.reverse()) or len(meter_ids) != 1
            or (meter_id is not None and meter_id not in cfg)):
        return None, None
    return flow, meter_id


def _device_of(dirs: dict[int, FlowRule]) -> tuple[str | None, int]:
    """(device MAC, side: 0 client, 1 server) from the MAC the session rules match
    (see :func:`rules.session_rule`); (None, 0) for rules without one (older rules:
    the client is taken for the device)."""
    for d, r in sorted(dirs.items()):
        for field, sender in (("eth_src", True), ("eth_dst", False)):
            mac = r.match.get(field)
            if isinstance(mac, str):
                # the device sends direction d (eth_src) or receives it (eth_dst)
                return mac.lower(), d if sender else 1 - d
    return None, 0


def recognise(enforce, rule: FlowRule, flow: FiveTuple, meter_id: int | None,
              cfg: dict[int, MeterRule], labels, use_queue: bool = True,
              mac: str | None = None, ip: str | None = None) -> tuple[str, Enforcement]:
    """(label, enforcement) whose rule equals ``rule`` under the running policy
    (``enforce``, asked for the device ``mac``/``ip``: device entries apply); when
    none does, class ``restored`` with the rule's own enforcement."""
    sid, d = decode_cookie(rule.cookie)
    f = flow if d == 0 else flow.reverse()
    ip = ip or str(ipaddress.ip_address(flow.src))
    c = cfg.get(meter_id) if meter_id is not None else None
    for label in [*labels, UNKNOWN]:
        try:
            e = enforce(label, mac, ip)
        except Exception:
            continue
        if (e.meter_key is None) != (c is None):
            continue
        if c is not None and (int(c.rate_kbps), c.burst_kb or 0) != (int(e.rate_kbps),
                                                                      e.burst_kb or 0):
            continue
        if session_rule(f, d, sid, e, meter_id, use_queue).same_effect(rule):
            return label, e
    dscp = next((a[2] for a in rule.actions if a[0] == "set_field" and a[1] == "ip_dscp"),
                None)
    queue = next((a[1] for a in rule.actions if a[0] == "set_queue"), None)
    return "restored", Enforcement(
        "drop" if rule.is_drop else "allow", int(c.rate_kbps) if c else None,
        c.burst_kb if c else None, "session", dscp, queue, rule.idle_timeout,
        rule.hard_timeout, "restored")
