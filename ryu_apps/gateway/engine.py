"""The decision engine: packets in, plain OpenFlow rule descriptions out.

Knows nothing of Ryu, eventlet or sockets. The adapter calls:

- :meth:`GatewayEngine.switch_connected` when a switch (re)connects;
- :meth:`GatewayEngine.mirror_packet` for each packet-in copied by table 0;
- :meth:`GatewayEngine.flush` soon after (sessions that became ready together are
  classified in one batch);
- :meth:`GatewayEngine.tick` periodically (mirror time cap);
- :meth:`GatewayEngine.flow_removed` for each flow-removed message;
- :meth:`GatewayEngine.set_enforcer` after a policy reload;
- :meth:`GatewayEngine.readback_reply` with each flow-stats / meter-config reply part
  after a controller restart (``switch_connected(fresh=True, readback=True)`` asked
  for them; see :mod:`ryu_apps.gateway.restore`);
- :meth:`GatewayEngine.forward` for each table-1 miss (L2 learning);
- :meth:`GatewayEngine.switch_disconnected` when the connection drops.

Each returns the messages to send, in order. Injected: ``preprocess`` (a
``classifier.preprocess.Preprocess``), ``classify(batch) -> [(label, confidence[, ood score])]``
(``Bundle.classify_scored``, or None: every session is ``unknown``) and
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

from classifier.bundle import UNKNOWN
from classifier.packets import PROTO_TCP, PROTO_UDP, ip_from_frame, parse
from policies.enforcement import Enforcement

from .faults import FaultLog
from .meters import MeterTable
from .quotas import DeviceQuotas
from .metrics import Metrics, class_counts, engine_counts
from .restore import ReadBack, adopt
from .rules import (SESSION_TABLE, FiveTuple, FlowRule, L2Learning, Message, ReadRequest,
                    base_pipeline, clear_all, controller_meter, decode_cookie, frame_macs,
                    overload_rules, session_rule, session_rules)
from .sessions import ENFORCED, MIRRORING, PENDING, Session, SessionTable

log = logging.getLogger("egw.engine")

#: Used when even the policy lookup fails: forward, untouched (fail-open).
FAIL_OPEN = Enforcement("allow", None, None, "class", None, None, 60, 0, "fail-open")

#: What :meth:`GatewayEngine.configure` may change (also constructor keywords).
SETTINGS = ("wan_port", "mirror_max_packets", "mirror_max_seconds", "use_queue",
            "max_mirroring_per_port", "packet_in_rate", "packet_in_burst", "restore_timeout",
            "device_session_rate", "device_session_burst", "overload_seconds")


class GatewayEngine:
    def __init__(self, preprocess, classify: Callable | None,
                 enforce: Callable[[str, str | None, str | None], object], *,
                 wan_port: int | None = None, max_sessions: int = 10000,
                 mirror_max_packets: int = 32, mirror_max_seconds: float = 3.0,
                 use_queue: bool = True, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None,
                 max_mirroring_per_port: int = 0, packet_in_rate: int = 0,
                 packet_in_burst: int | None = None, restore_timeout: float = 5.0,
                 device_session_rate: float = 0.0, device_session_burst: float | None = None,
                 overload_seconds: float = 10.0,
                 faults: FaultLog | None = None, dp_id: int = 0):
        self.enforce = enforce
        self.dp_id = dp_id
        self.table = SessionTable(max_sessions)
        self.meters = MeterTable()
        self.l2 = L2Learning()
        self.metrics = (metrics or Metrics()).switch(dp_id)
        self.clock = clock
        self.log = logger or log
        self.pending: list[Session] = []
        self._set_preprocess(preprocess, classify)
        #: errors logged and counted once per cause (see faults.py; one per process)
        self.faults = faults or FaultLog(self.metrics, self.log)
        self.port_load: dict[int, int] = defaultdict(int)
        #: new-session quotas per LAN device, and the devices over theirs (quotas.py)
        self.quotas = DeviceQuotas()
        #: the read-back in flight after a controller restart (see restore.py)
        self.readback: ReadBack | None = None
        #: a read-back timed out while the switch was away: clear it when it is back
        self._clear_on_connect = False
        self.connected = False
        #: the controller meter's drop count at the last meter-stats reply
        self._meter_dropped = 0
        self.metrics.sessions_max.set(max_sessions)
        self.metrics.zero(packet_ins=("mirror", "forward", "duplicate", "ignored", "shed",
                                      "overload"),
                          packet_in_meter_dropped=(), overloads=("forward", "drop"))
        #: the audit trail: ``audit(event, **fields)`` (see audit.py), set by the Gateway
        self.audit: Callable[..., None] | None = None
        #: wan_port: the uplink (the device of a session is its other end);
        #: max_mirroring_per_port: at most this many not-yet-enforced sessions per
        #: ingress port (0: no limit): a host flooding new sessions cannot take the whole
        #: table (its excess sessions are forwarded by the switch, just not tracked:
        #: counted as "shed"); packet_in_rate/burst: the OFPM_CONTROLLER meter,
        #: packets/s (0: none); restore_timeout: seconds to wait for a read-back;
        #: device_session_rate/burst: new sessions per second a LAN device (port + MAC)
        #: may open before it is overloaded (0: no quota), for overload_seconds.
        self.configure(wan_port=wan_port, mirror_max_packets=mirror_max_packets,
                       mirror_max_seconds=mirror_max_seconds, use_queue=use_queue,
                       max_mirroring_per_port=max_mirroring_per_port,
                       packet_in_rate=packet_in_rate, packet_in_burst=packet_in_burst,
                       restore_timeout=restore_timeout,
                       device_session_rate=device_session_rate,
                       device_session_burst=device_session_burst,
                       overload_seconds=overload_seconds)

    def configure(self, **settings) -> None:
        """Change settings (names in :data:`SETTINGS`); they apply from the next packet."""
        for name, value in settings.items():
            if name not in SETTINGS:
                raise TypeError(f"unknown engine setting {name!r}")
            setattr(self, name, value)
        q = self.quotas
        q.rate, q.seconds = float(self.device_session_rate), float(self.overload_seconds)
        q.burst = float(self.device_session_burst if self.device_session_burst is not None
                        else max(1.0, 4 * q.rate))

    def _set_preprocess(self, preprocess, classify) -> None:
        self.preprocess, self.classify = preprocess, classify
        self.chatter_ports = tuple(preprocess.filter.chatter_ports) \
            if preprocess is not None and preprocess.filter.drop_chatter else ()
        budget = preprocess.mirror_budget() if preprocess is not None else (1, 0)
        self.budget_packets, self.budget_bytes = budget

    @property
    def restoring(self) -> bool:
        """A read-back is in flight: nothing is classified (no meter id may be handed
        out) until the switch's state is known."""
        return self.readback is not None

    # ---- switch --------------------------------------------------------------
    def switch_connected(self, fresh: bool, readback: bool = False,
                         now: float | None = None) -> list[Message]:
        """Base pipeline and packet-in meter, then the port descriptions request; on a
        reconnect also the current meters and session rules. A ``fresh`` start (this
        process never saw the switch) first clears whatever a previous run left, unless
        ``readback``: then the switch's rules are kept (established sessions keep
        flowing), its flows and meters are requested (:class:`ReadBack`, replies to
        :meth:`readback_reply`) and classification waits until they are adopted. A
        reconnect while a read-back is in flight asks for it again."""
        now = self.clock() if now is None else now
        self.connected = True
        self.metrics.switch_connected.set(1)
        self._meter_dropped = 0             # the meter is re-created below: its counts restart
        msgs: list[Message] = []
        if self._clear_on_connect:
            fresh, readback, self._clear_on_connect = True, False, False
        if fresh:
            if not readback:
                msgs += clear_all()
            # This engine's sessions (if any) belong to a switch state that is gone.
            self.table.clear()
            self.port_load.clear()
            self.quotas.clear()
            self.meters = MeterTable()
            self.pending.clear()
            self.readback = None
        msgs += controller_meter(self.packet_in_rate, self.packet_in_burst)
        msgs += base_pipeline(self.chatter_ports)
        if not fresh:
            msgs += self.meters.all_rules()
            for s in self.table:
                if s.state == ENFORCED:
                    msgs += self._rules(s)
        self.metrics.rules_installed.inc(sum(isinstance(m, FlowRule) for m in msgs))
        msgs.append(ReadRequest("ports"))
        if (fresh and readback) or self.readback is not None:
            self.readback = ReadBack(now + self.restore_timeout)
            msgs += self.readback.requests()
        return msgs

    def switch_disconnected(self) -> None:
        """The connection dropped (the engine keeps its state for a reconnect)."""
        self.connected = False
        self.metrics.switch_connected.set(0)

    def readback_reply(self, kind: str, xid: int, items: list, more: bool, labels=(),
                       now: float | None = None) -> list[Message]:
        """One part of a read-back reply (``kind``: flows | meters, as plain rules).
        Once both are complete: :func:`restore.adopt` and the deletes it returns, then
        the classifications that waited. ``labels``: the class names to recognise."""
        rb = self.readback
        if rb is None or not rb.reply(kind, xid, items, more):
            return []
        now = self.clock() if now is None else now
        self.readback = None
        learnt = self.l2.relearn(self.dp_id, rb.flows)
        msgs = adopt(self, rb.flows, rb.meters, labels, now)
        c = self.counters
        self.log.info("restore: %d session(s) and %d MAC(s) re-learnt from the switch, %d "
                      "stale rule(s) and %d unused meter(s) deleted", c["restored"],
                      learnt, c["stale_flows"], c["stale_meters"])
        self._audit("restore", result="adopted", sessions=c["restored"], macs=learnt,
                    stale_flows=c["stale_flows"], stale_meters=c["stale_meters"])
        # deletes before the classifications that waited (they may reuse freed ids)
        return msgs + (self.flush(now) if self.pending else [])

    def awaits(self, kind: str, xid: int) -> bool:
        """Whether a reply (``kind``: flows | meters) with ``xid`` is the read-back's."""
        return self.readback is not None and self.readback.awaits(kind, xid)

    def _readback_expired(self, now: float) -> list[Message]:
        self.readback = None
        self.faults.report("restore", "no reply to the flow/meter read-back",
                           f"switch {self.dp_id:016x}: clearing it and starting afresh")
        self._audit("restore", result="timeout", connected=self.connected)
        if not self.connected:
            self._clear_on_connect = True
            return []
        msgs = self.switch_connected(fresh=True, readback=False, now=now)
        return [m for m in msgs if not isinstance(m, ReadRequest)]

    def forward(self, in_port: int, frame: bytes, buffer_id: int | None = None
                ) -> list[Message]:
        """A table-1 miss: learn the source, forward (a rule once the destination is
        known) and send the packet on."""
        self.metrics.packet_ins.labels("forward").inc()
        msgs = self.l2.packet_in(self.dp_id, in_port, frame, buffer_id)
        if msgs is None:            # shorter than an Ethernet header: nothing to forward
            self.metrics.errors.labels("malformed").inc()
            return []
        return msgs

    def stats_requests(self) -> list[Message]:
        """The periodic poll of the session rules' counters (and of the controller
        meter's, when there is one)."""
        return [ReadRequest("session_stats")] + (
            [ReadRequest("controller_meter")] if self.packet_in_rate else [])

    def controller_meter_stats(self, dropped: int) -> None:
        """The controller meter's band drop count as the switch reports it (cumulative
        since the meter was created): the packet-ins the switch did not send."""
        new = dropped - self._meter_dropped if dropped >= self._meter_dropped else dropped
        self._meter_dropped = dropped
        if new:
            self.metrics.packet_in_meter_dropped.inc(new)

    # ---- packets -------------------------------------------------------------
    def mirror_packet(self, in_port: int, frame: bytes, now: float | None = None) -> list[Message]:
        """A packet copied to the controller by table 0 (the switch forwarded it)."""
        now = self.clock() if now is None else now
        try:
            return self._mirror_packet(in_port, frame, now)
        except Exception as exc:  # a malformed packet never kills the app
            self.metrics.packet_ins.labels("failed").inc()
            self.faults.report("packet", exc, f"packet-in on port {in_port} not handled",
                               logging.WARNING)
            return []

    def _mirror_packet(self, in_port: int, frame: bytes, now: float) -> list[Message]:
        ip = ip_from_frame(frame)
        pv = parse(ip) if ip is not None else None
        if pv is None or pv.fragment or pv.proto not in (PROTO_TCP, PROTO_UDP):
            malformed = ip is None or pv is None
            if malformed:
                self.metrics.errors.labels("malformed").inc()
            self.metrics.packet_ins.labels("malformed" if malformed else "ignored").inc()
            return []
        key, _ = pv.session_key()       # == FiveTuple.of(pv).key()
        s = self.table.get(key)
        msgs: list[Message] = []
        if s is None:
            macs = frame_macs(frame)
            if self.quotas.enabled and in_port != self.wan_port and macs is not None:
                over = self._over_quota(in_port, macs[0], pv, now)
                if over is not None:
                    return over
            if (self.max_mirroring_per_port > 0
                    and self.port_load[in_port] >= self.max_mirroring_per_port):
                # This port already has its share of sessions being classified: the
                # switch forwards the packet anyway; the session is not tracked (yet).
                self.metrics.packet_ins.labels("shed").inc()
                return []
            client_mac, server_mac = macs
            s, evicted = self.table.create(
                key, flow=FiveTuple.of(pv), client_mac=client_mac, server_mac=server_mac,
                client_port=in_port, first_ts=now, last_ts=now)
            self.port_load[in_port] += 1
            self._set_device(s, pv)
            for old in evicted:
                msgs += self.forget(old, "evicted")
            self.metrics.sessions_active.set(len(self.table))
        s.last_ts = now
        d = s.direction(pv.src, pv.sport)
        if s.state == ENFORCED:
            self.metrics.packet_ins.labels("duplicate").inc()
            s.duplicates += 1
            if not s.rules_alive[d]:
                # That direction's rule timed out while the other lives: re-install it.
                s.rules_alive[d] = True
                r = session_rule(s.flow if d == 0 else s.flow.reverse(), d, s.sid,
                                 s.enforcement, s.meter_id, self.use_queue, *s.device)
                self.metrics.rules_installed.inc()
                msgs.append(r)
            return msgs
        self.metrics.packet_ins.labels("mirror").inc()
        if s.state == PENDING:
            return msgs
        s.mirrored += 1
        s.packets.append((now, pv, d))        # parsed once: readiness and vectorize reuse it
        if s.readiness is None and self.preprocess is not None:
            s.readiness = self.preprocess.readiness()
        filled = s.readiness is not None and s.readiness.add(now, pv, d)
        if filled or s.mirrored >= self.mirror_max_packets or self.preprocess is None:
            self._make_pending(s)
        return msgs

    def _over_quota(self, in_port: int, mac: str, pv, now: float) -> list[Message] | None:
        """A new session from the LAN device ``mac``: None when within the device's quota;
        else the packet is not tracked (counted ``overload``) and, the first time, the
        device's overload rules are returned (the switch stops copying its packets to us)."""
        key = (in_port, mac)
        if self.quotas.is_overloaded(key, now):
            self.metrics.packet_ins.labels("overload").inc()
            return []
        if self.quotas.take(key, now):
            return None
        action = "forward"
        on_overload = getattr(self.enforce, "on_overload", None)
        if on_overload is not None:
            try:
                action = on_overload(mac, str(ipaddress.ip_address(pv.src)))
            except Exception as exc:
                self.faults.report("policy", exc, "on_overload lookup failed (forward)")
        o = self.quotas.overload(key, action, now)
        self.metrics.packet_ins.labels("overload").inc()
        self.metrics.overloads.labels(action).inc()
        self.metrics.devices_overloaded.set(len(self.quotas.overloaded))
        self.log.warning("device %s on port %d opens new sessions faster than %.0f/s: not "
                         "mirrored (%s) for %.0f s", o.mac, in_port, self.quotas.rate,
                         action, self.quotas.seconds)
        self._audit("overload", mac=o.mac, in_port=in_port, action=action,
                    seconds=self.quotas.seconds)
        rules = overload_rules(in_port, o.mac, action, int(round(self.quotas.seconds)))
        self.metrics.rules_installed.inc(len(rules))
        return rules

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
        with what they have (or marked unknown); a read-back past its deadline is given
        up (the switch is cleared)."""
        now = self.clock() if now is None else now
        msgs: list[Message] = []
        if self.readback is not None and self.readback.expired(now):
            msgs += self._readback_expired(now)
        if self.quotas.expire(now):
            self.metrics.devices_overloaded.set(len(self.quotas.overloaded))
        for s in list(self.table.unenforced.values()):
            if s.state == MIRRORING and now - s.first_ts >= self.mirror_max_seconds:
                self._make_pending(s)
        return msgs + (self.flush(now) if self.pending else [])

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
                x = self.preprocess.vectorize_views(s.packets)
                if x.shape[0] == 0:
                    results[s.sid] = (UNKNOWN, 0.0, "no-data")
                    continue
                rows.append(x[0])
                owners.append(s)
            except Exception as exc:
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
                for s, (label, conf, *score) in zip(owners, out):
                    s.ood_score = float(score[0]) if score and score[0] is not None else None
                    capped = not self._filled(s)
                    results[s.sid] = (str(label), float(conf), "cap" if capped else "model")
            except Exception as exc:
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

    @staticmethod
    def _filled(s: Session) -> bool:
        return s.readiness is not None and s.readiness.ready

    def _enforcement(self, s: Session, label: str):
        try:
            return self.enforce(label, s.device_mac, s.device_ip, confidence=s.confidence)
        except Exception as exc:
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
        s.packets, s.readiness = [], None   # free the mirrored packets
        msgs: list[Message] = []
        s.meter_id, mm = self.meters.acquire(s.enforcement.meter_key, s.sid)
        msgs += mm
        self.metrics.meters_installed.inc(len(mm))
        msgs += self._rules(s)
        self.stats_started(label)
        self.metrics.sessions_classified.labels(label).inc()
        self.metrics.decisions.labels(s.enforcement.action).inc()
        self.metrics.first_packet_to_rule.observe(max(0.0, now - s.first_ts))
        self._log_decision(s, "classified")
        return msgs

    def _rules(self, s: Session) -> list[FlowRule]:
        s.rules_alive = [True, True]
        self.metrics.rules_installed.inc(2)
        return session_rules(s.flow, s.sid, s.enforcement, s.meter_id, self.use_queue,
                             *s.device)

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
        self._audit(rec.pop("event"), **rec)

    def _audit(self, event: str, **fields) -> None:
        if self.audit is not None:
            self.audit(event, dpid=f"{self.dp_id:016x}", **fields)

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
        return self.forget(s, "flow-removed")

    def flow_stats(self, cookie: int, packets: int, nbytes: int) -> None:
        """Counters of a live session rule (from a flow-stats reply)."""
        dec = decode_cookie(cookie)
        s = self.table.by_id.get(dec[0]) if dec else None
        if s is not None and s.rules_alive[dec[1]]:
            s.packet_live[dec[1]] = packets
            s.byte_live[dec[1]] = nbytes

    def forget(self, s: Session, why: str) -> list[Message]:
        """Remove a session; returns the delete of its session meter, if any."""
        self._unload_port(s)
        self.table.remove(s)
        self.metrics.sessions_expired.labels(why).inc()
        self.metrics.sessions_active.set(len(self.table))
        if s.state != ENFORCED:
            return []
        m = self.metrics
        m.class_active.labels(s.label).dec()
        m.class_packets.labels(s.label).inc(sum(s.packet_count))
        m.class_bytes.labels(s.label).inc(sum(s.byte_count))
        if s.enforcement.action == "drop":
            m.class_dropped.labels(s.label).inc(sum(s.packet_count))
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
            changes = [list(c) for c in new.changes_from(s.enforcement)]
            if not changes:
                continue
            old_meter = s.meter_id
            s.enforcement = new
            s.meter_id, mm = self.meters.acquire(new.meter_key, s.sid)
            adds += mm
            if old_meter is not None and old_meter != s.meter_id:
                old_meters.append((s.sid, old_meter))
            alive = list(s.rules_alive)
            rules += [r for r, live in zip(self._rules(s), alive) if live]
            s.rules_alive = alive
            changed += 1
            self._log_decision(s, "policy-update", changes)
        # Release old meters only after every session has its new one: an id freed here
        # and re-used by another session in the same update would be deleted after its
        # re-use, and deleting a meter deletes the flows that use it.
        for sid, mid in old_meters:
            releases += self.meters.release(sid, mid)
        deletes = [m for m in releases] + self.meters.collect()
        self.metrics.policy_updates.inc(changed)
        return adds + rules + deletes

    def set_model(self, preprocess, classify) -> list[Message]:
        """A new model (bundle reload): later batches use it; sessions being mirrored
        keep their packets. Returns the chatter-rule changes of the base pipeline."""
        old_rules = {(r.priority, tuple(sorted(r.match.items())))
                     for r in base_pipeline(self.chatter_ports)}
        self._set_preprocess(preprocess, classify)
        for s in self.table:           # readiness counts against the new model's budget
            if s.state != ENFORCED:
                s.readiness = None
                if preprocess is not None:
                    s.readiness = preprocess.readiness()
                    for p in s.packets:
                        s.readiness.add(*p)
        new = base_pipeline(self.chatter_ports)
        new_keys = {(r.priority, tuple(sorted(r.match.items()))) for r in new}
        deletes = [FlowRule(SESSION_TABLE, prio, dict(m), command="delete")
                   for prio, m in sorted(old_rules - new_keys, key=repr)]
        adds = [r for r in new if (r.priority, tuple(sorted(r.match.items()))) not in old_rules]
        return adds + deletes

    # ---- counters --------------------------------------------------------------
    def stats_started(self, label: str) -> None:
        """A session of ``label`` got its rules (classified or restored)."""
        self.metrics.class_sessions.labels(label).inc()
        self.metrics.class_active.labels(label).inc()

    def count_restore(self, restored: int, stale_flows: int, stale_meters: int) -> None:
        self.metrics.sessions_restored.inc(restored)
        self.metrics.stale_removed.labels("flow").inc(stale_flows)
        self.metrics.stale_removed.labels("meter").inc(stale_meters)
        self.metrics.sessions_active.set(len(self.table))

    # ---- views ---------------------------------------------------------------
    def sessions(self) -> list[dict]:
        return [s.view() for s in self.table]

    def stats(self) -> dict:
        per_class = class_counts(self.metrics)
        for s in self.table:  # add the live counters of active sessions
            if s.state == ENFORCED:
                st = per_class.setdefault(s.label, {"sessions": 0, "active": 0, "packets": 0,
                                                    "bytes": 0, "dropped": 0})
                st["packets"] += sum(s.packet_count)
                st["bytes"] += sum(s.byte_count)
        return {"classes": per_class, "sessions_active": len(self.table),
                "sessions_evicted": self.table.evicted, "meters": self.meters.describe(),
                "overloaded": self.quotas.describe(self.clock()),
                "counters": self.counters}

    @property
    def counters(self) -> dict[str, int]:
        """What this switch's engine counted, read from its Prometheus series."""
        return engine_counts(self.metrics)
