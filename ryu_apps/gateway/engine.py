"""The decision engine: packets in, plain OpenFlow rule descriptions out.

Knows nothing of Ryu, eventlet or sockets. The adapter calls:

- :meth:`GatewayEngine.switch_connected` when a switch (re)connects;
- :meth:`GatewayEngine.mirror_packet` for each packet-in copied by table 0;
- :meth:`GatewayEngine.flush` soon after (sessions that became ready together are
  classified in one batch);
- :meth:`GatewayEngine.tick` periodically (mirror time cap);
- :meth:`GatewayEngine.flow_removed` for each flow-removed message;
- :meth:`GatewayEngine.set_enforcer` after a policy reload.

Each returns the messages to send, in order. Injected: ``preprocess`` (a
``classifier.preprocess.Preprocess``), ``classify(batch) -> [(label, confidence)]``
(``Bundle.classify``, or None: every session is ``unknown``) and
``enforce(class_name, mac, ip) -> Enforcement`` (``policies.enforcement_for`` bound
to the current policy).
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

from .meters import MeterTable
from .metrics import Metrics
from .rules import (FiveTuple, FlowRule, Message, base_pipeline, clear_all, decode_cookie,
                    session_rule, session_rules)
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
                 logger: logging.Logger | None = None):
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

    # ---- switch --------------------------------------------------------------
    def switch_connected(self, fresh: bool) -> list[Message]:
        """Base pipeline; on a reconnect also the current meters and session rules
        (a ``fresh`` start first clears whatever a previous run left)."""
        msgs: list[Message] = []
        if fresh:
            msgs += clear_all()
            # Sessions from a previous switch state are gone with its flows.
            for s in self.table:
                self.table.remove(s)
            self.meters = MeterTable()
            self.pending.clear()
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
        try:
            return self._mirror_packet(in_port, frame, now)
        except Exception as exc:  # a malformed packet never kills the app
            self.counters["errors"] += 1
            self.metrics.errors.labels("packet").inc()
            self.log.warning("packet-in on port %s not handled: %r", in_port, exc)
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
            flow = FiveTuple(pv.version, pv.proto, pv.src, pv.sport, pv.dst, pv.dport)
            s, evicted = self.table.create(
                key, flow=flow, client_mac=_mac_text(frame[6:12]),
                server_mac=_mac_text(frame[0:6]), client_port=in_port,
                first_ts=now, last_ts=now)
            self._set_device(s, pv)
            for old in evicted:
                msgs += self._forget(old, "evicted")
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
                                 s.enforcement, s.meter_id, self.use_queue)
                self.metrics.rules_installed.inc()
                msgs.append(r)
            return msgs
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
        s.state = PENDING
        self.pending.append(s)

    def has_pending(self) -> bool:
        return bool(self.pending)

    # ---- classification ------------------------------------------------------
    def tick(self, now: float | None = None) -> list[Message]:
        """Mirror time cap: sessions mirrored for ``mirror_max_seconds`` are classified
        with what they have (or marked unknown)."""
        now = self.clock() if now is None else now
        for s in self.table:
            if s.state == MIRRORING and now - s.first_ts >= self.mirror_max_seconds:
                self._make_pending(s)
        return self.flush(now) if self.pending else []

    def flush(self, now: float | None = None) -> list[Message]:
        """Classify every pending session in one batch; returns meters then rules."""
        now = self.clock() if now is None else now
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
                self.metrics.errors.labels("preprocess").inc()
                self.log.warning("session %d: preprocessing failed: %r", s.sid, exc)
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
                self.metrics.errors.labels("classifier").inc()
                self.log.error("classifier failed on a batch of %d: %r (fail-open: unknown)",
                               len(owners), exc)
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
            return self.enforce(label, s.device_mac, s.device_ip)
        except Exception as exc:
            self.counters["errors"] += 1
            self.metrics.errors.labels("policy").inc()
            self.log.error("session %d: policy lookup for %r failed: %r", s.sid, label, exc)
            try:
                return self.enforce(UNKNOWN, s.device_mac, s.device_ip)
            except Exception:
                return FAIL_OPEN

    def _decide(self, s: Session, label: str, conf: float, reason: str, now: float
                ) -> list[Message]:
        s.label, s.confidence, s.reason = label, conf, reason
        s.enforcement = self._enforcement(s, label)
        s.classified_ts = now
        s.state = ENFORCED
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
        for s in self.table:
            if s.state != ENFORCED:
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
                releases += self.meters.release(s.sid, old_meter)
            rules += [r for r, alive in zip(self._rules_keep(s), s.rules_alive) if alive]
            changed += 1
            self._log_decision(s, "policy-update", changes)
        deletes = [m for m in releases] + self.meters.collect()
        self.counters["policy_updates"] += changed
        return adds + rules + deletes

    def _rules_keep(self, s: Session) -> list[FlowRule]:
        self.metrics.rules_installed.inc(2)
        return session_rules(s.flow, s.sid, s.enforcement, s.meter_id, self.use_queue)

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
