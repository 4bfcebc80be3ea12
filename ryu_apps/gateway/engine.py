"""The decision engine: packets in, plain OpenFlow rule descriptions out.

Knows nothing of Ryu, eventlet or sockets. The adapter calls:

- :meth:`GatewayEngine.switch_connected` when a switch (re)connects;
- :meth:`GatewayEngine.mirror_packet` for each packet-in copied by table 0;
- :meth:`GatewayEngine.flush` soon after (sessions that became ready together are
  classified in one batch);
- :meth:`GatewayEngine.tick` periodically (mirror time cap);
- :meth:`GatewayEngine.flow_removed` for each flow-removed message;
- :meth:`GatewayEngine.set_enforcer` after a policy reload;
- :meth:`GatewayEngine.adopt` with the rules and meters read back from a switch after
  a controller restart (``switch_connected(fresh=True, readback=True)``).

Each returns the messages to send, in order. Injected: ``preprocess`` (a
``classifier.preprocess.Preprocess``), ``classify(batch) -> [(label, confidence)]``
(``Bundle.classify``, or None: every session is ``unknown``) and
``enforce(class_name, mac, ip, confidence=None) -> Enforcement``
(``policies.enforcement_for`` bound to the current policy; the confidence lets a
class entry's ``min_confidence`` demote unsure labels to the default entry).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections import defaultdict
from typing import Callable

import numpy as np

from classifier.packets import PROTO_TCP, PROTO_UDP, ip_from_frame, parse
from policies.enforcement import Enforcement

from .faults import FaultLog
from .meters import MeterTable, _Meter
from .metrics import Metrics
from .rules import (BASE_COOKIE, CONTROLLER_METER, SESSION_PRIORITY, SESSION_TABLE, FiveTuple,
                    FlowRule, MeterRule, Message, base_pipeline, clear_all, controller_meter,
                    decode_cookie, flow_from_match, session_rule, session_rules)
from .sessions import ENFORCED, MIRRORING, PENDING, Session, SessionTable

UNKNOWN = "unknown"

log = logging.getLogger("egw.engine")

#: Used when even the policy lookup fails: forward, untouched (fail-open).
FAIL_OPEN = Enforcement("allow", None, None, "class", None, None, 60, 0, "fail-open")


def _mac_text(mac) -> str:
    if isinstance(mac, (bytes, bytearray)):
        return ":".join(f"{b:02x}" for b in mac)
    return str(mac)


class GatewayEngine:
    def __init__(self, preprocess, classify: Callable | None,
                 enforce: Callable[[str, str | None, str | None], object], *,
                 wan_port: int | None = None, max_sessions: int = 10000,
                 mirror_max_packets: int = 32, mirror_max_seconds: float = 3.0,
                 use_queue: bool = True, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None,
                 max_mirroring_per_port: int = 0, packet_in_rate: int = 0,
                 packet_in_burst: int | None = None):
        self.preprocess = preprocess
        self.classify = classify
        self.enforce = enforce
        self.wan_port = wan_port
        self.table = SessionTable(max_sessions)
        self.meters = MeterTable()
        self.mirror_max_packets = mirror_max_packets
        self.mirror_max_seconds = mirror_max_seconds
        self.use_queue = use_queue
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.log = logger or log
        self.pending: list[Session] = []
        self.chatter_ports = tuple(preprocess.filter.chatter_ports) \
            if preprocess is not None and preprocess.filter.drop_chatter else ()
        budget = preprocess.mirror_budget() if preprocess is not None else (1, 0)
        self.budget_packets, self.budget_bytes = budget
        self.counters = defaultdict(int)
        # per policy entry / label: sessions, packets, bytes (finished sessions).
        self.class_stats: dict[str, dict[str, int]] = defaultdict(
            lambda: {"sessions": 0, "active": 0, "packets": 0, "bytes": 0, "dropped": 0})
        #: errors logged and counted once per cause (see faults.py)
        self.faults = FaultLog(self.metrics, self.log)
        #: at most this many not-yet-enforced sessions per ingress port (0: no limit):
        #: a host flooding new sessions cannot take the whole table (its excess
        #: sessions are forwarded by the switch, just not tracked: counted as "shed").
        self.max_mirroring_per_port = max_mirroring_per_port
        self.port_load: dict[int, int] = defaultdict(int)
        #: packet-in rate limit (OFPM_CONTROLLER meter), packets/s; 0: none.
        self.packet_in_rate = packet_in_rate
        self.packet_in_burst = packet_in_burst
        #: True between a fresh connect with read-back and :meth:`adopt`: no
        #: classification (no meter id allocated) until the switch's state is known.
        self.restoring = False

    # ---- switch --------------------------------------------------------------
    def switch_connected(self, fresh: bool, readback: bool = False) -> list[Message]:
        """Base pipeline and packet-in meter; on a reconnect also the current meters and
        session rules. A ``fresh`` start (this process never saw the switch) first
        clears whatever a previous run left, unless ``readback``: then the switch's
        rules are kept (established sessions keep flowing), the adapter reads its
        flows and meters back and hands them to :meth:`adopt`, and classification
        waits until then."""
        msgs: list[Message] = []
        if fresh:
            if not readback:
                msgs += clear_all()
            # This engine's sessions (if any) belong to a switch state that is gone.
            for s in self.table:
                self.table.remove(s)
            self.port_load.clear()
            self.meters = MeterTable()
            self.pending.clear()
            self.restoring = readback
        msgs += controller_meter(self.packet_in_rate, self.packet_in_burst)
        msgs += base_pipeline(self.chatter_ports)
        if not fresh:
            msgs += self.meters.all_rules()
            for s in self.table:
                if s.state == ENFORCED:
                    msgs += self._rules(s)
        self.metrics.rules_installed.inc(sum(isinstance(m, FlowRule) for m in msgs))
        return msgs

    # ---- packets -------------------------------------------------------------
    def mirror_packet(self, in_port: int, frame: bytes, now: float | None = None) -> list[Message]:
        """A packet copied to the controller by table 0 (the switch forwarded it)."""
        now = self.clock() if now is None else now
        self.counters["packets"] += 1
        try:
            return self._mirror_packet(in_port, frame, now)
        except Exception as exc:  # a malformed packet never kills the app
            self.counters["errors"] += 1
            self.counters["failed"] += 1
            self.faults.report("packet", exc, f"packet-in on port {in_port} not handled",
                               logging.WARNING)
            return []

    def _mirror_packet(self, in_port: int, frame: bytes, now: float) -> list[Message]:
        ip = ip_from_frame(frame)
        pv = parse(ip) if ip is not None else None
        if pv is None or pv.fragment or pv.proto not in (PROTO_TCP, PROTO_UDP):
            self.counters["malformed" if ip is None or pv is None else "ignored"] += 1
            if ip is None or pv is None:
                self.metrics.errors.labels("malformed").inc()
            self.metrics.packet_ins.labels("ignored").inc()
            return []
        key, _ = pv.session_key()
        s = self.table.get(key)
        msgs: list[Message] = []
        if s is None:
            if (self.max_mirroring_per_port > 0
                    and self.port_load[in_port] >= self.max_mirroring_per_port):
                # This port already has its share of sessions being classified: the
                # switch forwards the packet anyway; the session is not tracked (yet).
                self.counters["shed"] += 1
                self.metrics.packet_ins.labels("shed").inc()
                return []
            flow = FiveTuple(pv.version, pv.proto, pv.src, pv.sport, pv.dst, pv.dport)
            s, evicted = self.table.create(
                key, flow=flow, client_mac=_mac_text(frame[6:12]),
                server_mac=_mac_text(frame[0:6]), client_port=in_port,
                first_ts=now, last_ts=now)
            self.port_load[in_port] += 1
            self._set_device(s, pv)
            for old in evicted:
                msgs += self._forget(old, "evicted")
            self.metrics.sessions_active.set(len(self.table))
        s.last_ts = now
        d = s.direction(pv.src, pv.sport)
        if s.state == ENFORCED:
            self.counters["duplicate"] += 1
            self.metrics.packet_ins.labels("duplicate").inc()
            s.duplicates += 1
            if not s.rules_alive[d]:
                # That direction's rule timed out while the other lives: re-install it.
                s.rules_alive[d] = True
                r = session_rule(s.flow if d == 0 else s.flow.reverse(), d, s.sid,
                                 s.enforcement, s.meter_id, self.use_queue)
                self.metrics.rules_installed.inc()
                msgs.append(r)
            return msgs
        self.counters["mirrored"] += 1
        self.metrics.packet_ins.labels("mirror").inc()
        if s.state == PENDING:
            return msgs
        s.mirrored += 1
        s.packets.append((now, ip, d))
        if (s.mirrored >= self.mirror_max_packets
                or self.preprocess is None
                or self.preprocess.session_ready(s.packets)):
            self._make_pending(s)
        return msgs

    def _set_device(self, s: Session, pv) -> None:
        """The LAN end of the session: the side not behind the WAN port (or the client)."""
        client_is_lan = self.wan_port is None or s.client_port != self.wan_port
        if client_is_lan:
            s.device_mac, s.device_ip = s.client_mac, str(ipaddress.ip_address(pv.src))
        else:
            s.device_mac, s.device_ip = s.server_mac, str(ipaddress.ip_address(pv.dst))

    def _make_pending(self, s: Session) -> None:
        self.table.set_state(s, PENDING)
        self.pending.append(s)

    def _unload_port(self, s: Session) -> None:
        if s.state != ENFORCED and self.port_load.get(s.client_port, 0) > 0:
            self.port_load[s.client_port] -= 1

    def has_pending(self) -> bool:
        return bool(self.pending)

    # ---- classification ------------------------------------------------------
    def tick(self, now: float | None = None) -> list[Message]:
        """Mirror time cap: sessions mirrored for ``mirror_max_seconds`` are classified
        with what they have (or marked unknown)."""
        now = self.clock() if now is None else now
        for s in list(self.table.unenforced.values()):
            if s.state == MIRRORING and now - s.first_ts >= self.mirror_max_seconds:
                self._make_pending(s)
        return self.flush(now) if self.pending else []

    def flush(self, now: float | None = None) -> list[Message]:
        """Classify every pending session in one batch; returns meters then rules."""
        now = self.clock() if now is None else now
        if self.restoring:
            return []          # the switch's meters are not known yet: wait for adopt()
        batch = [s for s in self.pending if s.state == PENDING and
                 self.table.by_id.get(s.sid) is s]
        self.pending.clear()
        if not batch:
            return []
        t0 = time.perf_counter()
        rows: list[np.ndarray] = []
        owners: list[Session] = []
        results: dict[int, tuple[str, float, str]] = {}
        for s in batch:
            try:
                if self.preprocess is None or self.classify is None:
                    results[s.sid] = (UNKNOWN, 0.0, "no-model")
                    continue
                x = self.preprocess.vectorize(s.packets)
                if x.shape[0] == 0:
                    results[s.sid] = (UNKNOWN, 0.0, "no-data")
                    continue
                rows.append(x[0])
                owners.append(s)
            except Exception as exc:
                self.counters["errors"] += 1
                self.faults.report("preprocess", exc,
                                   f"session {s.sid}: preprocessing failed (fail-open: unknown)",
                                   logging.WARNING)
                results[s.sid] = (UNKNOWN, 0.0, "error")
        if rows:
            try:
                out = self.classify(np.stack(rows))
                if len(out) != len(owners):
                    raise ValueError(f"classifier returned {len(out)} results for "
                                     f"{len(owners)} samples")
                for s, (label, conf) in zip(owners, out):
                    capped = not self._filled(s)
                    results[s.sid] = (str(label), float(conf), "cap" if capped else "model")
            except Exception as exc:
                self.counters["errors"] += 1
                self.faults.report("classifier", exc,
                                   f"classifier failed on a batch of {len(owners)} "
                                   "(fail-open: unknown)")
                for s in owners:
                    results[s.sid] = (UNKNOWN, 0.0, "error")
        self.metrics.latency.observe(time.perf_counter() - t0)
        self.metrics.batch_size.observe(len(batch))
        msgs: list[Message] = []
        for s in batch:
            label, conf, reason = results[s.sid]
            msgs += self._decide(s, label, conf, reason, now)
        return msgs

    def _filled(self, s: Session) -> bool:
        try:
            return self.preprocess.session_ready(s.packets)
        except Exception:
            return False

    def _enforcement(self, s: Session, label: str):
        try:
            return self.enforce(label, s.device_mac, s.device_ip, confidence=s.confidence)
        except Exception as exc:
            self.counters["errors"] += 1
            self.faults.report("policy", exc, f"policy lookup for {label!r} failed "
                               f"(session {s.sid}; using 'unknown')")
            try:
                return self.enforce(UNKNOWN, s.device_mac, s.device_ip)
            except Exception:
                return FAIL_OPEN

    def _decide(self, s: Session, label: str, conf: float, reason: str, now: float
                ) -> list[Message]:
        s.label, s.confidence, s.reason = label, conf, reason
        s.enforcement = self._enforcement(s, label)
        s.classified_ts = now
        self._unload_port(s)
        self.table.set_state(s, ENFORCED)
        s.packets = []   # free the mirrored bytes
        msgs: list[Message] = []
        s.meter_id, mm = self.meters.acquire(s.enforcement.meter_key, s.sid)
        msgs += mm
        self.metrics.meters_installed.inc(len(mm))
        msgs += self._rules(s)
        st = self.class_stats[label]
        st["sessions"] += 1
        st["active"] += 1
        self.counters["classified"] += 1
        self.metrics.sessions_classified.labels(label).inc()
        self.metrics.decisions.labels(s.enforcement.action).inc()
        self.metrics.first_packet_to_rule.observe(max(0.0, now - s.first_ts))
        self._log_decision(s, "classified")
        return msgs

    def _rules(self, s: Session) -> list[FlowRule]:
        s.rules_alive = [True, True]
        self.metrics.rules_installed.inc(2)
        return session_rules(s.flow, s.sid, s.enforcement, s.meter_id, self.use_queue)

    def _log_decision(self, s: Session, event: str, changes=None) -> None:
        e = s.enforcement
        rec = {"event": event, "session": s.sid, "flow": s.flow.text(), "device": s.device_mac,
               "class": s.label, "confidence": round(s.confidence, 4), "reason": s.reason,
               "action": e.action, "policy_entry": getattr(e, "cls", None),
               "dscp": e.dscp, "rate_kbps": e.rate_kbps, "meter": s.meter_id,
               "mirrored": s.mirrored}
        if changes:
            rec["changes"] = changes
        self.log.info("decision %s", json.dumps(rec, sort_keys=True))

    # ---- expiry --------------------------------------------------------------
    def flow_removed(self, cookie: int, packets: int = 0, nbytes: int = 0) -> list[Message]:
        dec = decode_cookie(cookie)
        if dec is None:
            return []
        sid, d = dec
        s = self.table.by_id.get(sid)
        if s is None:
            return []
        s.packet_base[d] += packets
        s.byte_base[d] += nbytes
        s.packet_live[d] = s.byte_live[d] = 0
        s.rules_alive[d] = False
        if any(s.rules_alive):
            return []
        return self._forget(s, "flow-removed")

    def flow_stats(self, cookie: int, packets: int, nbytes: int) -> None:
        """Counters of a live session rule (from a flow-stats reply)."""
        dec = decode_cookie(cookie)
        s = self.table.by_id.get(dec[0]) if dec else None
        if s is not None and s.rules_alive[dec[1]]:
            s.packet_live[dec[1]] = packets
            s.byte_live[dec[1]] = nbytes

    def _forget(self, s: Session, why: str) -> list[Message]:
        self._unload_port(s)
        self.table.remove(s)
        self.metrics.sessions_expired.labels(why).inc()
        self.metrics.sessions_active.set(len(self.table))
        if s.state != ENFORCED:
            return []
        st = self.class_stats[s.label]
        st["active"] -= 1
        st["packets"] += sum(s.packet_count)
        st["bytes"] += sum(s.byte_count)
        if s.enforcement.action == "drop":
            st["dropped"] += sum(s.packet_count)
        return self.meters.release(s.sid, s.meter_id)

    # ---- policy --------------------------------------------------------------
    def set_enforcer(self, enforce) -> list[Message]:
        """A new policy: recompute every enforced session's enforcement and update the
        rules of those that changed (new meters first, unused meters last)."""
        self.enforce = enforce
        adds: list[Message] = []
        rules: list[Message] = []
        releases: list[Message] = []
        changed = 0
        old_meters: list[tuple[int, int]] = []
        for s in self.table:
            if s.state != ENFORCED or s.label == "restored":
                continue
            new = self._enforcement(s, s.label)
            if new == s.enforcement:
                continue
            changes = [[f, a, b] for f, a, b in new.changes_from(s.enforcement)] \
                if hasattr(new, "changes_from") else None
            old_meter = s.meter_id
            s.enforcement = new
            s.meter_id, mm = self.meters.acquire(new.meter_key, s.sid)
            adds += mm
            if old_meter is not None and old_meter != s.meter_id:
                old_meters.append((s.sid, old_meter))
            rules += [r for r, alive in zip(self._rules_keep(s), s.rules_alive) if alive]
            changed += 1
            self._log_decision(s, "policy-update", changes)
        # Release old meters only after every session has its new one: an id freed here
        # and re-used by another session in the same update would be deleted after its
        # re-use, and deleting a meter deletes the flows that use it.
        for sid, mid in old_meters:
            releases += self.meters.release(sid, mid)
        deletes = [m for m in releases] + self.meters.collect()
        self.counters["policy_updates"] += changed
        return adds + rules + deletes

    def _rules_keep(self, s: Session) -> list[FlowRule]:
        self.metrics.rules_installed.inc(2)
        return session_rules(s.flow, s.sid, s.enforcement, s.meter_id, self.use_queue)

    def set_model(self, preprocess, classify) -> list[Message]:
        """A new model (bundle reload): later batches use it; sessions being mirrored
        keep their packets. Returns the chatter-rule changes of the base pipeline."""
        old_rules = {(r.priority, tuple(sorted(r.match.items())))
                     for r in base_pipeline(self.chatter_ports)}
        self.preprocess, self.classify = preprocess, classify
        self.chatter_ports = tuple(preprocess.filter.chatter_ports) \
            if preprocess is not None and preprocess.filter.drop_chatter else ()
        budget = preprocess.mirror_budget() if preprocess is not None else (1, 0)
        self.budget_packets, self.budget_bytes = budget
        new = base_pipeline(self.chatter_ports)
        new_keys = {(r.priority, tuple(sorted(r.match.items()))) for r in new}
        deletes = [FlowRule(SESSION_TABLE, prio, dict(m), command="delete")
                   for prio, m in sorted(old_rules - new_keys, key=repr)]
        adds = [r for r in new if (r.priority, tuple(sorted(r.match.items()))) not in old_rules]
        return adds + deletes

    # ---- controller restart ----------------------------------------------------
    def adopt(self, flows: list[FlowRule], meters: list[MeterRule],
              labels: list[str] | tuple = (), now: float | None = None) -> list[Message]:
        """Re-learn the switch's state after a controller restart.

        ``flows``: every flow entry read back (flow-stats reply, as :class:`FlowRule`);
        ``meters``: every meter (meter-config reply). Session rules (our cookie) become
        enforced sessions again: their class is found by matching the rule against the
        running policy's enforcement for each of ``labels`` (+ ``unknown``); when none
        gives the same rule the session keeps the rule's own enforcement as class
        ``restored``. The meters they use are adopted under the same ids (class meters
        under their class key, so new sessions of that class reuse them: no duplicate);
        anything else in table 0 that is not ours, and meters no rule uses, are deleted.
        Returns the messages to send (deletes first, then any classification that was
        waiting)."""
        now = self.clock() if now is None else now
        self.restoring = False
        msgs: list[Message] = []
        cfg = {m.meter_id: m for m in meters if m.meter_id != CONTROLLER_METER}
        groups: dict[int, dict[int, FlowRule]] = {}
        stale: list[FlowRule] = []
        for r in flows:
            if r.table != SESSION_TABLE or r.cookie == BASE_COOKIE:
                continue
            dec = decode_cookie(r.cookie)
            if dec is None or r.priority != SESSION_PRIORITY:
                stale.append(r)
                continue
            groups.setdefault(dec[0], {})[dec[1]] = r
        used: dict[int, set[int]] = defaultdict(set)     # meter id -> session ids
        restored = 0
        # Sessions seen while the read-back was on its way have no rule yet: they get
        # new ids after the restored ones (whose ids are in the switch's cookies).
        waiting = list(self.table.by_id.values())
        for w in waiting:
            del self.table.by_id[w.sid]
        for sid, dirs in sorted(groups.items()):
            f0 = flow_from_match(dirs[0].match) if 0 in dirs else None
            f1 = flow_from_match(dirs[1].match) if 1 in dirs else None
            flow = f0 or (f1.reverse() if f1 else None)
            meter_ids = {r.meter for r in dirs.values()}
            ok = (flow is not None and (f1 is None or f1 == flow.reverse())
                  and len(meter_ids) == 1
                  and (next(iter(meter_ids)) is None or next(iter(meter_ids)) in cfg))
            key = self._key(flow) if ok else None
            if not ok or self.table.get(key) is not None:
                stale += list(dirs.values())
                continue
            meter_id = next(iter(meter_ids))
            rule = dirs.get(0) or dirs.get(1)
            label, enf = self._recognise(rule, flow, meter_id, cfg, labels, sid)
            s, evicted = self.table.create(
                key, sid=sid, flow=flow, client_mac="", server_mac="", client_port=-1,
                first_ts=now, last_ts=now, state=ENFORCED)
            for old in evicted:
                msgs += self._forget(old, "evicted")
            s.device_ip = str(ipaddress.ip_address(flow.src))
            s.label, s.confidence, s.reason = label, 0.0, "restored"
            s.enforcement, s.meter_id, s.classified_ts = enf, meter_id, now
            s.rules_alive = [0 in dirs, 1 in dirs]
            self.table.reserve_ids_above(sid)
            if meter_id is not None:
                used[meter_id].add(sid)
                mk = enf.meter_key
                mkey = ((mk if mk[0] == "class" else (*mk, sid)) if mk is not None
                        else ("restored", meter_id))
                m = self.meters.by_key.get(mkey)
                if m is None or m.meter_id != meter_id:
                    if m is not None:       # two switch meters for one class: keep apart
                        mkey = ("restored", meter_id)
                    c = cfg[meter_id]
                    m = self.meters.by_key.setdefault(
                        mkey, _Meter(meter_id, mkey, int(c.rate_kbps), c.burst_kb))
                m.users.add(sid)
            st = self.class_stats[label]
            st["sessions"] += 1
            st["active"] += 1
            restored += 1
        for w in waiting:
            w.sid = self.table.new_id()
            self.table.by_id[w.sid] = w
        # meter ids in use are taken; unused switch meters are stale
        self.meters.reserve(used)
        for mid in sorted(cfg):
            if mid not in used:
                msgs.append(MeterRule(mid, command="delete"))
                self.metrics.stale_removed.labels("meter").inc()
        for r in stale:
            msgs.append(FlowRule(r.table, r.priority, dict(r.match), command="delete"))
            self.metrics.stale_removed.labels("flow").inc()
        self.metrics.sessions_restored.inc(restored)
        self.metrics.sessions_active.set(len(self.table))
        self.counters["restored"] += restored
        self.counters["stale_flows"] += len(stale)
        self.counters["stale_meters"] += len(cfg) - len(used)
        self.log.info("restore: %d session(s) re-learnt from the switch, %d stale rule(s) and "
                      "%d unused meter(s) deleted", restored, len(stale), len(cfg) - len(used))
        # deletes before the classifications that waited (they may reuse freed ids)
        return msgs + (self.flush(now) if self.pending else [])

    @staticmethod
    def _key(flow: FiveTuple) -> tuple:
        a, b = (flow.src, flow.sport), (flow.dst, flow.dport)
        if a <= b:
            return (flow.version, flow.proto, flow.src, flow.sport, flow.dst, flow.dport)
        return (flow.version, flow.proto, flow.dst, flow.dport, flow.src, flow.sport)

    def _recognise(self, rule: FlowRule, flow: FiveTuple, meter_id, cfg, labels, sid):
        """(label, enforcement) whose rule equals ``rule`` under the running policy."""
        d = decode_cookie(rule.cookie)[1]
        f = flow if d == 0 else flow.reverse()
        ip = str(ipaddress.ip_address(flow.src))
        for label in [*labels, UNKNOWN]:
            try:
                e = self.enforce(label, None, ip)
            except Exception:
                continue
            mk = e.meter_key
            if (mk is None) != (meter_id is None):
                continue
            if mk is not None:
                c = cfg[meter_id]
                if int(c.rate_kbps) != int(e.rate_kbps) or (c.burst_kb or 0) != (e.burst_kb or 0):
                    continue
            want = session_rule(f, d, sid, e, meter_id, self.use_queue)
            if (want.actions, want.goto, want.idle_timeout, want.hard_timeout) == \
                    (tuple(rule.actions), rule.goto, rule.idle_timeout, rule.hard_timeout):
                return label, e
        # Not what the running policy would install: keep the rule's own enforcement.
        dscp = next((a[2] for a in rule.actions if a[0] == "set_field" and a[1] == "ip_dscp"),
                    None)
        queue = next((a[1] for a in rule.actions if a[0] == "set_queue"), None)
        c = cfg.get(meter_id) if meter_id is not None else None
        e = Enforcement("drop" if rule.is_drop else "allow",
                        int(c.rate_kbps) if c else None, c.burst_kb if c else None,
                        "session", dscp, queue, rule.idle_timeout, rule.hard_timeout,
                        "restored")
        return "restored", e

    # ---- views ---------------------------------------------------------------
    def sessions(self) -> list[dict]:
        return [s.view() for s in self.table]

    def stats(self) -> dict:
        per_class = {k: dict(v) for k, v in self.class_stats.items()}
        for s in self.table:  # add the live counters of active sessions
            if s.state == ENFORCED:
                st = per_class.setdefault(s.label, {"sessions": 0, "active": 0, "packets": 0,
                                                    "bytes": 0, "dropped": 0})
                st["packets"] += sum(s.packet_count)
                st["bytes"] += sum(s.byte_count)
        return {"classes": per_class, "sessions_active": len(self.table),
                "sessions_evicted": self.table.evicted, "meters": self.meters.describe(),
                "counters": dict(self.counters)}
