"""The gateway process's logic above the per-switch engines (no Ryu, no eventlet).

:class:`Gateway` holds the model and policy (reloaded, last good kept), one
:class:`~ryu_apps.gateway.engine.GatewayEngine` per switch, the WAN port choice and
the WAN HTB, and the REST views. Its methods return ``{dpid: [messages]}`` for the
adapter (``ryu_apps/egw.py``) to send, which only decodes events and schedules
:meth:`Gateway.tick`, :meth:`Gateway.watch` and :meth:`Gateway.poll_stats`.
``conf``: any object with the ``egw_*`` options (``ryu_apps/egw_flags.py``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from policies import DEFAULT_POLICY_PATH, PolicyEnforcer, PolicyError
from policies.reload import PolicyHolder
from policies.watch import FileWatch

from .audit import DecisionLog, NullLog
from .auth import page
from .devices import IDENTIFY_PRIORITY, QUARANTINE_OPEN_PRIORITY, DeviceTable, device_cookie
from .engine import GatewayEngine
from .faults import FaultLog
from .htb import WanHtb
from .metrics import Metrics
from .model import ModelHolder
from .rules import FlowRule, Message

WAN_NAME_HINTS = ("wan", "uplink")

Outbox = dict[int, list[Message]]


def find_wan(names: dict[int, str], want: str = "") -> int | None:
    """The WAN port: ``want`` (a port number or name), else the first port whose name
    contains 'wan' or 'uplink'."""
    want = (want or "").strip()
    if want:
        if want.isdigit():
            return int(want)
        return next((no for no, name in names.items() if name == want), None)
    return next((no for no, name in sorted(names.items())
                 if any(h in name.lower() for h in WAN_NAME_HINTS)), None)


class Gateway:
    def __init__(self, conf, logger: logging.Logger | None = None):
        self.conf = conf
        self.log = logger or logging.getLogger("egw")
        self.metrics = Metrics().switch(None)
        self.metrics.zero(policy_reloads=("ok", "rejected"), model_reloads=("ok", "rejected"),
                          device_model_reloads=("ok", "rejected"),
                          errors=("classifier", "preprocess"))
        self.faults = FaultLog(self.metrics, self.log)
        self.audit = self._open_audit()
        self.model = self._load_model()
        self.policy = self._load_policy()
        self.devices = self._load_devices()
        self.engines: dict[int, GatewayEngine] = {}
        self.wan_ports: dict[int, int] = {}
        self.htb = WanHtb(self.metrics, self.log)
        self.sighup = False

    # ---- configuration -------------------------------------------------------
    def _open_audit(self):
        """The decision log (``egw_decision_log``); one that cannot be opened is
        reported and the gateway runs without it (forwarding never depends on it)."""
        path = getattr(self.conf, "egw_decision_log", "") or ""
        if not path:
            return NullLog()
        try:
            return DecisionLog(path, max_bytes=self.conf.egw_decision_log_max_bytes,
                               backups=self.conf.egw_decision_log_backups,
                               on_error=lambda exc: self.faults.report(
                                   "audit", exc, f"cannot write the decision log {path}"))
        except OSError as exc:
            self.faults.report("audit", exc, f"cannot open the decision log {path}; "
                               "running without it")
            return NullLog()

    @property
    def bundle(self):
        return self.model.current if self.model is not None else None

    def _load_model(self) -> ModelHolder | None:
        """A bad bundle at start-up does not stop the gateway: it runs without a model
        (every session 'unknown', i.e. the default policy), says which file is wrong,
        and loads the bundle once its files change."""
        from classifier.bundle import DEFAULT_BUNDLE_DIR

        path = self.conf.egw_model or ""
        if not path:
            if not (DEFAULT_BUNDLE_DIR / "labels.json").is_file():
                self.log.warning("no model bundle given and the embedded default (%s) is "
                                 "empty: every session will be 'unknown'", DEFAULT_BUNDLE_DIR)
                return None
            path = str(DEFAULT_BUNDLE_DIR)
        holder = ModelHolder(path, prefer_int8=self.conf.egw_prefer_int8)
        ok, msg = holder.load()
        self.audit.write("model", trigger="start", path=path, ok=ok,
                         message=msg if not ok else f"{holder.current.model_file.name}: "
                         f"{len(holder.current.labels)} classes {holder.current.labels}")
        if not ok:
            self.metrics.model_reloads.labels("rejected").inc()
            self.faults.report("model", msg, "cannot load the model bundle at start-up")
            return holder
        b = holder.current
        self.log.info("model %s (%s): %d classes %s, threshold %.2f, %s", b.path,
                      b.model_file.name, len(b.labels), b.labels, b.threshold,
                      b.preprocess.repr)
        return holder

    def _load_policy(self) -> PolicyHolder:
        path = Path(self.conf.egw_policy or DEFAULT_POLICY_PATH)
        # Class names are checked against the model only when both were chosen on
        # purpose: the embedded policy is meant to work with any model.
        labels = (self.bundle.labels if self.bundle is not None and self.conf.egw_policy
                  and self.conf.egw_model else None)
        try:
            holder = PolicyHolder(path, labels)
        except PolicyError as exc:
            self.audit.write("policy", trigger="start", path=str(path), ok=False,
                             error=str(exc))
            if path == Path(DEFAULT_POLICY_PATH):
                self.log.error("cannot load the policy: %s", exc)
                raise
            # Keep forwarding: run the embedded policy, watch the bad file for a fix.
            self.faults.report("policy", str(exc), "cannot load the policy at start-up; "
                               f"running the embedded {DEFAULT_POLICY_PATH} until it is fixed")
            holder = PolicyHolder(DEFAULT_POLICY_PATH)
            holder.path, holder.labels, holder.last_error = path, labels, str(exc)
            holder.watch = FileWatch(path, content=True)
            holder.watch.mark(known=False)   # the next edit of the bad file reloads it
            return holder
        self.log.info("policy %s loaded", path)
        self.audit.write("policy", trigger="start", path=str(path), ok=True)
        return holder

    def _load_devices(self) -> DeviceTable:
        """The device table, with the device model (``egw_device_model``) when one is
        given and loads; without it every device is ``unknown_device`` (forwarding and
        session classification do not depend on it). The device model is held and
        reloaded as the session model is (:class:`ModelHolder`, :meth:`watch`): a bad
        bundle at start-up is loaded once its files change."""
        from classifier.evaluate_devices import load_device_bundle

        path = getattr(self.conf, "egw_device_model", "") or ""
        self.device_model = None
        if path:
            self.device_model = ModelHolder(path, loader=load_device_bundle,
                                            prefer_int8=self.conf.egw_prefer_int8,
                                            name="device model",
                                            empty="every device is unknown_device")
            self._load_holder(self.device_model, "start")
        policy = self.policy
        bundle = self.device_model.current if self.device_model is not None else None
        return DeviceTable(bundle, lambda names: policy.current.device_type_entry(names),
                           max_seconds=float(getattr(self.conf, "egw_device_max_seconds", 30.0)),
                           state_path=getattr(self.conf, "egw_device_state", "") or None,
                           metrics=self.metrics._root, audit=self.audit.write, logger=self.log)

    def _enforcer(self):
        return PolicyEnforcer(self.policy.current, self.devices.names_of)

    def labels(self) -> list[str]:
        """Class names a restored rule may belong to: the model's and the policy's."""
        return sorted(set(self.bundle.labels if self.bundle is not None else [])
                      | set(self.policy.current.classes))

    def engine(self, dpid: int) -> GatewayEngine:
        eng = self.engines.get(dpid)
        if eng is None:
            c, b = self.conf, self.bundle
            eng = self.engines[dpid] = GatewayEngine(
                b.preprocess if b is not None else None,
                self.model.classify if b is not None else None,
                self._enforcer(), max_sessions=c.egw_max_sessions,
                mirror_max_packets=c.egw_mirror_max_packets,
                mirror_max_seconds=c.egw_mirror_max_seconds, use_queue=c.egw_set_queue,
                metrics=self.metrics, max_mirroring_per_port=c.egw_max_mirroring_per_port,
                packet_in_rate=c.egw_packet_in_rate,
                packet_in_burst=c.egw_packet_in_burst or None,
                restore_timeout=c.egw_restore_timeout,
                device_session_rate=c.egw_device_session_rate,
                device_session_burst=c.egw_device_session_burst,
                overload_seconds=c.egw_overload_seconds, faults=self.faults, dp_id=dpid)
            eng.audit = self.audit.write
        return eng

    # ---- switch events -------------------------------------------------------
    def switch_connected(self, dpid: int) -> list[Message]:
        fresh = dpid not in self.engines
        readback = fresh and self.conf.egw_restore
        msgs = self.engine(dpid).switch_connected(fresh=fresh, readback=readback)
        if not readback:       # else once the read-back is adopted (it deletes unknown rules)
            msgs += self.devices.rules_for(dpid)
        self.log.info("switch %016x %s: base pipeline%s installed", dpid,
                      "connected" if fresh else "reconnected",
                      ", reading its flows and meters back" if readback
                      else "" if fresh else ", meters and session rules re-")
        return msgs

    def switch_disconnected(self, dpid: int) -> None:
        if dpid in self.engines:
            self.engines[dpid].switch_disconnected()
        self.log.info("switch %016x disconnected (state kept for a reconnect)", dpid)

    def ports(self, dpid: int, names: dict[int, str]) -> None:
        """The switch's port names: pick its WAN port (and set up the HTB on it)."""
        wan = find_wan(names, self.conf.egw_wan_port)
        self.engine(dpid).configure(wan_port=wan)
        if wan is None:
            self.log.warning("switch %016x: no WAN port found (ports %s); the device of a "
                             "session is its client", dpid, names)
            return
        self.wan_ports[dpid] = wan
        self.log.info("switch %016x: WAN port %d (%s)", dpid, wan, names.get(wan))
        if self.conf.egw_wan_htb:
            self.htb.setup(names.get(wan), self.policy.current.wan)

    def readback_reply(self, dpid: int, kind: str, xid: int, items, more: bool
                       ) -> list[Message]:
        eng = self.engines.get(dpid)
        if eng is None:
            return []
        waiting = eng.restoring
        msgs = eng.readback_reply(kind, xid, items, more, self.labels())
        if waiting and not eng.restoring:
            msgs += self.devices.rules_for(dpid)
        return msgs

    # ---- periodic work (the adapter schedules these) ---------------------------
    def tick(self) -> Outbox:
        out: Outbox = {}
        for dpid, eng in list(self.engines.items()):
            try:
                waiting = eng.restoring
                out[dpid] = eng.tick()
                if waiting and not eng.restoring:      # read-back given up: switch cleared
                    out[dpid] += self.devices.rules_for(dpid)
            except Exception as exc:
                self.faults.report("tick", exc, "tick failed")
        try:
            decided = self.devices.tick()
            if decided:
                _merge(out, self._devices_changed(decided))
        except Exception as exc:
            self.faults.report("devices", exc, "device tick failed")
        return out

    # ---- devices ---------------------------------------------------------------
    def _devices_changed(self, msgs: list[Message]) -> Outbox:
        """Device rules (by switch) and the sessions whose policy changed with a
        device's type."""
        out: Outbox = {}
        for m in msgs:
            dpid = next((d.dpid for d in self.devices.devices.values()
                         if getattr(m, "cookie", None) == device_cookie(d.mac)), None)
            if dpid is not None:
                out.setdefault(dpid, []).append(m)
        enforce = self._enforcer()
        for dpid, eng in list(self.engines.items()):
            out.setdefault(dpid, []).extend(eng.set_enforcer(enforce))
        return out

    def device_packet(self, dpid: int, in_port: int, frame: bytes) -> Outbox:
        """Every packet-in's frame, before the engine sees it (device identification)."""
        try:
            msgs = self.devices.observe(dpid, in_port, frame, self.wan_ports.get(dpid))
        except Exception as exc:
            self.faults.report("devices", exc, "device identification failed on a packet")
            return {}
        if not msgs:
            return {}
        if any(m.priority != QUARANTINE_OPEN_PRIORITY   # hosts a DNS answer opened: no decision
               and (m.command == "delete" or m.priority != IDENTIFY_PRIORITY) for m in msgs):
            return self._devices_changed(msgs)        # a decision: sessions may change
        return {dpid: msgs}

    def approve_device(self, mac: str) -> tuple[dict | None, Outbox]:
        d, msgs = self.devices.approve(mac)
        return (d.view() if d is not None else None), ({d.dpid: msgs} if d and msgs else {})

    def devices_view(self) -> dict:
        return {"devices": self.devices.view(),
                "model": str(self.devices.bundle.path) if self.devices.bundle is not None else None,
                "model_error": (self.device_model.last_error if self.device_model is not None
                                else None),
                "persisted_to": str(self.devices.state_path) if self.devices.state_path else None}

    def flush(self) -> Outbox:
        return {dpid: eng.flush() for dpid, eng in list(self.engines.items())
                if eng.has_pending()}

    def poll_stats(self) -> Outbox:
        return {dpid: eng.stats_requests() for dpid, eng in self.engines.items()}

    def watch(self) -> Outbox:
        """SIGHUP or changed files: reload the policy and/or the model."""
        out: Outbox = {}
        try:
            if self.sighup:
                self.sighup = False
                _merge(out, self.reload_policy("SIGHUP")[2])
                _merge(out, self.reload_model("SIGHUP")[2])
                self.reload_device_model("SIGHUP")
                return out
            if self.conf.egw_policy_watch > 0 and self.policy.changed_on_disk():
                _merge(out, self.reload_policy("file change")[2])
            if (self.conf.egw_model_watch > 0 and self.model is not None
                    and self.model.changed_on_disk()):
                _merge(out, self.reload_model("file change")[2])
            if (self.conf.egw_model_watch > 0 and self.device_model is not None
                    and self.device_model.changed_on_disk()):
                self.reload_device_model("file change")
        except Exception as exc:
            self.faults.report("reload", exc, "reload failed")
        return out

    def reload_model(self, trigger: str) -> tuple[bool, str, Outbox]:
        """Re-read the model bundle; a bad one is rejected, the running model kept."""
        if self.model is None:
            return False, "no model bundle configured", {}
        ok, msg = self._load_holder(self.model, trigger)
        if not ok:
            return False, msg, {}
        b = self.bundle
        return True, msg, {dpid: eng.set_model(b.preprocess, self.model.classify)
                           for dpid, eng in list(self.engines.items())}

    def reload_device_model(self, trigger: str) -> tuple[bool, str]:
        """Re-read the device model; a bad one is rejected, the running one kept. A good
        one identifies the devices first seen from now on (decisions made stay)."""
        if self.device_model is None:
            return False, "no device model configured"
        ok, msg = self._load_holder(self.device_model, trigger)
        if ok:
            self.devices.set_bundle(self.device_model.current)
        return ok, msg

    def _load_holder(self, holder: ModelHolder, trigger: str) -> tuple[bool, str]:
        """(Re)load the session or device model: audited (``model`` / ``device-model``),
        counted (``egw_model_reloads_total`` / ``egw_device_model_reloads_total``), a
        rejection logged once per cause naming the file (the running bundle kept)."""
        kind = holder.name.replace(" ", "_")                 # model | device_model
        ok, msg = holder.load()
        self.audit.write(kind.replace("_", "-"), trigger=trigger, path=str(holder.path),
                         ok=ok, message=msg)
        start = trigger == "start"
        if not ok or not start:            # as the session model: a good start is no reload
            getattr(self.metrics, f"{kind}_reloads").labels("ok" if ok else "rejected").inc()
        if not ok:
            self.faults.report(kind, msg, f"{holder.name} {'load' if start else 'reload'} "
                               f"({trigger})")
        else:
            self.log.info("%s %s (%s): %s", holder.name, "loaded" if start else "reload",
                          trigger, msg)
        return ok, msg

    def reload_policy(self, trigger: str) -> tuple[bool, str, Outbox]:
        """Re-read the policy file; a good one is applied to existing sessions too."""
        res = self.policy.reload()
        if res.error:
            self.audit.write("policy", trigger=trigger, path=str(self.policy.path), ok=False,
                             error=res.error)
            self.metrics.policy_reloads.labels("rejected").inc()
            self.log.error("policy reload (%s) rejected, keeping the running policy: %s",
                           trigger, res.error)
            return False, res.error, {}
        self.metrics.policy_reloads.labels("ok").inc()
        out = {dpid: eng.set_enforcer(self._enforcer())
               for dpid, eng in list(self.engines.items())}
        held = self.devices.requarantine()
        updated = sum(isinstance(m, FlowRule) for msgs in out.values() for m in msgs) // 2
        if res.wan_changed and self.conf.egw_wan_htb and self.htb.dev:
            self.htb.setup(self.htb.dev, self.policy.current.wan)
        _merge(out, held)
        self.log.info("policy reload (%s) applied: %s; %d session(s) updated", trigger,
                      res.summary(), updated)
        self.audit.write("policy", trigger=trigger, path=str(self.policy.path), ok=True,
                         summary=res.summary(), sessions_updated=updated)
        return True, f"{res.summary()} ({updated} session(s) updated)", out

    # ---- REST views ------------------------------------------------------------
    def sessions_page(self, limit: int, after: tuple[int, int] | None = None) -> dict:
        """One page of ``GET /egw/sessions``: sessions ordered by (id, switch); only the
        page's sessions are turned into views (see :func:`auth.page`)."""
        keys = ((sid, dpid) for dpid, eng in self.engines.items() for sid in eng.table.by_id)
        chosen, nxt = page(keys, limit, after)
        return {"sessions": [{**self.engines[d].table.by_id[sid].view(), "dpid": f"{d:016x}"}
                             for sid, d in chosen],
                "next": nxt, "total": sum(len(e.table) for e in self.engines.values())}

    def session(self, sid: int) -> dict | None:
        for dpid, eng in self.engines.items():
            s = eng.table.by_id.get(sid)
            if s is not None:
                return {**s.view(), "dpid": f"{dpid:016x}"}
        return None

    def all_stats(self) -> dict:
        return {f"{dpid:016x}": eng.stats() for dpid, eng in self.engines.items()}

    def health(self, switches) -> dict:
        """``GET /egw/health`` (no token): up or not, nothing more."""
        return {"ok": True, "switches": len(switches), "model": self.bundle is not None,
                "policy_ok": not self.policy.last_error}

    def status(self, switches) -> dict:
        """``GET /egw/status`` (token): paths, errors, labels."""
        return {"ok": True, "switches": [f"{d:016x}" for d in switches],
                "model": str(self.bundle.path) if self.bundle is not None else None,
                "model_error": self.model.last_error if self.model is not None else None,
                "device_model_error": (self.device_model.last_error
                                       if self.device_model is not None else None),
                "policy_error": self.policy.last_error,
                "errors": self.faults.describe(),
                "labels": self.bundle.labels if self.bundle is not None else [],
                "policy": str(self.policy.path), "wan_ports": self.wan_ports,
                "htb": self.htb.dev, "time": time.time()}

    def policy_view(self) -> dict:
        return {"path": str(self.policy.path), "last_error": self.policy.last_error,
                "policy": self.policy.current.model_dump(mode="json")}


def _merge(out: Outbox, more: Outbox) -> None:
    for dpid, msgs in more.items():
        out.setdefault(dpid, []).extend(msgs)
