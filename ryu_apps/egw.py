"""sdn-egw Ryu application (OpenFlow 1.3): ``ryu-manager ryu_apps/egw.py``.

A thin adapter: it decodes Ryu events, calls the pure gateway logic in
``ryu_apps/gateway`` (session table, decision engine, rule builder) and sends the
OpenFlow messages that logic returns. See docs/gateway.md for the table layout,
options (ryu_apps/egw_flags.py), REST API and metrics.
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from oslo_config import cfg as oslo_cfg
from ryu import cfg  # ryu.cfg.CONF is its own ConfigOpts (not oslo_config.cfg.CONF)
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                    set_ev_cls)
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3

from ryu_apps import egw_flags
from ryu_apps.gateway import rules as R
from ryu_apps.gateway.engine import GatewayEngine
from ryu_apps.gateway.faults import FaultLog
from ryu_apps.gateway.metrics import Metrics
from ryu_apps.gateway.model import ModelHolder
from ryu_apps.gateway.rest import APP_KEY, GatewayController

CONF = cfg.CONF
egw_flags.register(CONF)
# The REST API listens on loopback unless --wsapi-host (or the config file) says otherwise.
try:
    CONF.set_default("wsapi_host", "127.0.0.1")
except oslo_cfg.NoSuchOptError:  # pragma: no cover - ryu.app.wsgi registers it
    pass

SESSION_TABLE = R.SESSION_TABLE
FORWARD_TABLE = R.FORWARD_TABLE
WAN_NAME_HINTS = ("wan", "uplink")


class EdgeGateway(app_manager.RyuApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logger.setLevel(logging.INFO)
        logging.getLogger("egw.engine").setLevel(logging.INFO)
        self.metrics = Metrics()
        self.faults = FaultLog(self.metrics, self.logger)
        self.api_token = CONF.egw_api_token or ""
        self.model = self._load_bundle()
        self.policy_holder, self.policy_path = self._load_policy()
        self.engines: dict[int, GatewayEngine] = {}
        self.datapaths: dict[int, object] = {}
        self.port_names: dict[int, dict[int, str]] = {}
        self.wan_ports: dict[int, int] = {}
        self.htb_dev: str | None = None
        self.l2 = R.L2Learning()
        self._flush_scheduled = False
        self._sighup = False
        # dpid -> read-back state after a fresh connect (see _switch_features)
        self._restore: dict[int, dict] = {}
        kwargs["wsgi"].register(GatewayController, {APP_KEY: self})
        # Own loops (not in self.threads: RyuApp.stop joins those), killed in stop().
        self._loops = [hub.spawn(self._ticker)]
        if CONF.egw_policy_watch > 0 or CONF.egw_model_watch > 0:
            self._loops.append(hub.spawn(self._policy_watcher))
        if CONF.egw_stats_interval > 0:
            self._loops.append(hub.spawn(self._stats_poller))
        try:
            signal.signal(signal.SIGHUP, self._on_sighup)
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread (tests)
            pass
        atexit.register(self._teardown_htb)

    # ---- configuration -------------------------------------------------------
    @property
    def bundle(self):
        return self.model.current if self.model is not None else None

    def _load_bundle(self) -> ModelHolder | None:
        """The model holder. A bad bundle at start-up does not stop the gateway: it runs
        without a model (every session 'unknown', i.e. the default policy), says which
        file is wrong, and loads the bundle once its files change."""
        from classifier.bundle import DEFAULT_BUNDLE_DIR

        path = CONF.egw_model or ""
        if not path:
            if not (DEFAULT_BUNDLE_DIR / "labels.json").is_file():
                self.logger.warning("no model bundle given and the embedded default (%s) is "
                                    "empty: every session will be 'unknown'", DEFAULT_BUNDLE_DIR)
                return None
            path = str(DEFAULT_BUNDLE_DIR)
        holder = ModelHolder(path, prefer_int8=CONF.egw_prefer_int8)
        ok, msg = holder.load()
        if not ok:
            self.metrics.model_reloads.labels("rejected").inc()
            self.faults.report("model", msg, "cannot load the model bundle at start-up")
            return holder
        b = holder.current
        self.logger.info("model %s (%s): %d classes %s, threshold %.2f, %s", b.path,
                         b.model_file.name, len(b.labels), b.labels, b.threshold,
                         b.preprocess.repr)
        return holder

    def _load_policy(self):
        from policies import DEFAULT_POLICY_PATH, PolicyError
        from policies.reload import PolicyHolder

        path = Path(CONF.egw_policy or DEFAULT_POLICY_PATH)
        # Class names are checked against the model only when both were chosen on
        # purpose: the embedded policy is meant to work with any model.
        labels = (self.bundle.labels if self.bundle is not None and CONF.egw_policy
                  and CONF.egw_model else None)
        try:
            holder = PolicyHolder(path, labels)
        except PolicyError as exc:
            if path == Path(DEFAULT_POLICY_PATH):
                self.logger.error("cannot load the policy: %s", exc)
                raise
            # Keep forwarding: run the embedded policy, watch the bad file for a fix.
            self.faults.report("policy", str(exc), "cannot load the policy at start-up; "
                               f"running the embedded {DEFAULT_POLICY_PATH} until it is fixed")
            holder = PolicyHolder(DEFAULT_POLICY_PATH)
            holder.path, holder.labels = path, labels
            holder.last_error = str(exc)
            # the watcher reloads the configured file once it is edited again
            holder._hash, holder._sig = None, holder._stat()
            return holder, path
        self.logger.info("policy %s loaded", path)
        return holder, path

    def _enforcer(self):
        from policies import enforcement_for

        return functools.partial(enforcement_for, self.policy_holder.current)

    def _engine(self, dpid: int) -> GatewayEngine:
        eng = self.engines.get(dpid)
        if eng is None:
            b = self.bundle
            eng = GatewayEngine(
                b.preprocess if b is not None else None,
                self.model.classify if b is not None else None,
                self._enforcer(), max_sessions=CONF.egw_max_sessions,
                mirror_max_packets=CONF.egw_mirror_max_packets,
                mirror_max_seconds=CONF.egw_mirror_max_seconds,
                use_queue=CONF.egw_set_queue, metrics=self.metrics,
                max_mirroring_per_port=CONF.egw_max_mirroring_per_port,
                packet_in_rate=CONF.egw_packet_in_rate,
                packet_in_burst=CONF.egw_packet_in_burst or None)
            eng.faults = self.faults        # one "once per cause" log for the process
            if b is None:
                # Without a model there is nothing to wait for: one packet decides.
                eng.mirror_max_packets = 1
            self.engines[dpid] = eng
        return eng

    # ---- OpenFlow translation ------------------------------------------------
    def _send(self, dp, msgs) -> None:
        for m in msgs:
            try:
                dp.send_msg(self._to_ofp(dp, m))
            except Exception as exc:  # never let one bad message kill the app
                self.faults.report("openflow", exc, f"cannot send {type(m).__name__}")

    @staticmethod
    def _to_ofp(dp, m):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        if isinstance(m, R.MeterRule):
            if m.command == "delete_all":
                return parser.OFPMeterMod(dp, command=ofp.OFPMC_DELETE, meter_id=ofp.OFPM_ALL)
            cmd = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY,
                   "delete": ofp.OFPMC_DELETE}[m.command]
            flags = ((ofp.OFPMF_PKTPS if m.pktps else ofp.OFPMF_KBPS)
                     | (ofp.OFPMF_BURST if m.burst_kb else 0))
            bands = [] if m.command == "delete" else [
                parser.OFPMeterBandDrop(rate=int(m.rate_kbps), burst_size=int(m.burst_kb or 0))]
            return parser.OFPMeterMod(dp, command=cmd, flags=flags, meter_id=m.meter_id,
                                      bands=bands)
        if m.command == "delete_all":
            return parser.OFPFlowMod(datapath=dp, command=ofp.OFPFC_DELETE,
                                     table_id=ofp.OFPTT_ALL, out_port=ofp.OFPP_ANY,
                                     out_group=ofp.OFPG_ANY, match=parser.OFPMatch())
        match = parser.OFPMatch(**m.match)
        if m.command == "delete":
            return parser.OFPFlowMod(datapath=dp, command=ofp.OFPFC_DELETE_STRICT,
                                     table_id=m.table, priority=m.priority, match=match,
                                     out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY)
        inst = []
        if m.meter is not None:
            inst.append(parser.OFPInstructionMeter(m.meter, ofp.OFPIT_METER))
        acts = []
        for a in m.actions:
            if a[0] == "output":
                acts.append(parser.OFPActionOutput(a[1]))
            elif a[0] == "controller":
                acts.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER))
            elif a[0] == "set_field":
                acts.append(parser.OFPActionSetField(**{a[1]: a[2]}))
            elif a[0] == "set_queue":
                acts.append(parser.OFPActionSetQueue(a[1]))
        if acts:
            inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, acts))
        if m.goto is not None:
            inst.append(parser.OFPInstructionGotoTable(m.goto))
        return parser.OFPFlowMod(datapath=dp, table_id=m.table, priority=m.priority,
                                 match=match, instructions=inst, cookie=m.cookie,
                                 idle_timeout=m.idle_timeout, hard_timeout=m.hard_timeout,
                                 flags=ofp.OFPFF_SEND_FLOW_REM if m.send_flow_rem else 0,
                                 buffer_id=ofp.OFP_NO_BUFFER)

    # ---- switch events -------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _switch_features(self, ev):
        dp = ev.msg.datapath
        fresh = dp.id not in self.engines
        eng = self._engine(dp.id)
        self.datapaths[dp.id] = dp
        readback = fresh and CONF.egw_restore
        self._send(dp, eng.switch_connected(fresh=fresh, readback=readback))
        dp.send_msg(dp.ofproto_parser.OFPPortDescStatsRequest(dp, 0))
        if readback:
            self._start_restore(dp)
        self.logger.info("switch %016x %s: base pipeline%s installed", dp.id,
                         "connected" if fresh else "reconnected",
                         ", reading its flows and meters back" if readback
                         else "" if fresh else ", meters and session rules re-")

    # ---- controller restart: read the switch's state back ---------------------
    def _start_restore(self, dp) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        freq = parser.OFPFlowStatsRequest(dp, table_id=ofp.OFPTT_ALL, out_port=ofp.OFPP_ANY,
                                          out_group=ofp.OFPG_ANY)
        mreq = parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL)
        dp.set_xid(freq)
        dp.set_xid(mreq)
        self._restore[dp.id] = {"flow_xid": freq.xid, "meter_xid": mreq.xid, "flows": [],
                                "meters": [], "flows_done": False, "meters_done": False,
                                "deadline": time.monotonic() + CONF.egw_restore_timeout}
        dp.send_msg(freq)
        dp.send_msg(mreq)

    def _restore_reply(self, dp, kind: str, body, more: bool) -> None:
        st = self._restore.get(dp.id)
        if st is None:
            return
        st[kind] += body
        if not more:
            st[kind + "_done"] = True
        if st["flows_done"] and st["meters_done"]:
            del self._restore[dp.id]
            eng = self._engine(dp.id)
            labels = sorted(set(self.bundle.labels if self.bundle is not None else [])
                            | set(self.policy_holder.current.classes))
            msgs = eng.adopt(st["flows"], st["meters"], labels)
            learnt = self.l2.relearn(dp.id, st["flows"])
            self._send(dp, msgs)
            self.logger.info("switch %016x: restored %d session(s), %d MAC(s); %d stale "
                             "message(s) sent", dp.id, eng.counters["restored"], learnt,
                             len(msgs))

    def _restore_timeouts(self) -> None:
        now = time.monotonic()
        for dpid, st in list(self._restore.items()):
            if now < st["deadline"]:
                continue
            del self._restore[dpid]
            dp = self.datapaths.get(dpid)
            self.faults.report("restore", "no reply to the flow/meter read-back",
                               f"switch {dpid:016x}: clearing it and starting afresh")
            if dp is not None:
                self._send(dp, self.engines[dpid].switch_connected(fresh=True, readback=False))

    @staticmethod
    def _plain_flow(dp, st) -> R.FlowRule:
        ofp = dp.ofproto
        actions, goto, meter = [], None, None
        for inst in st.instructions:
            if isinstance(inst, dp.ofproto_parser.OFPInstructionMeter):
                meter = inst.meter_id
            elif isinstance(inst, dp.ofproto_parser.OFPInstructionGotoTable):
                goto = inst.table_id
            elif isinstance(inst, dp.ofproto_parser.OFPInstructionActions):
                for a in inst.actions:
                    if isinstance(a, dp.ofproto_parser.OFPActionOutput):
                        actions.append(("controller",) if a.port == ofp.OFPP_CONTROLLER
                                       else ("output", a.port))
                    elif isinstance(a, dp.ofproto_parser.OFPActionSetField):
                        actions.append(("set_field", a.key, a.value))
                    elif isinstance(a, dp.ofproto_parser.OFPActionSetQueue):
                        actions.append(("set_queue", a.queue_id))
                    else:
                        actions.append(("other", type(a).__name__))
        return R.FlowRule(st.table_id, st.priority, dict(st.match.items()), tuple(actions),
                          goto, meter, st.idle_timeout, st.hard_timeout, st.cookie,
                          bool(st.flags & ofp.OFPFF_SEND_FLOW_REM))

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _meter_config(self, ev):
        dp = ev.msg.datapath
        st = self._restore.get(dp.id)
        if st is None or ev.msg.xid != st["meter_xid"]:
            return
        ofp = dp.ofproto
        meters = []
        for m in ev.msg.body:
            band = m.bands[0] if m.bands else None
            meters.append(R.MeterRule(
                m.meter_id, int(band.rate) if band else 0,
                int(band.burst_size) if band and (m.flags & ofp.OFPMF_BURST) else None,
                pktps=bool(m.flags & ofp.OFPMF_PKTPS)))
        self._restore_reply(dp, "meters", meters, bool(ev.msg.flags & ofp.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _switch_gone(self, ev):
        dp = ev.datapath
        if dp.id is not None and self.datapaths.get(dp.id) is dp:
            del self.datapaths[dp.id]
            self.logger.info("switch %016x disconnected (state kept for a reconnect)", dp.id)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc(self, ev):
        dp = ev.msg.datapath
        names = {p.port_no: p.name.decode(errors="replace") if isinstance(p.name, bytes)
                 else str(p.name) for p in ev.msg.body if p.port_no < dp.ofproto.OFPP_MAX}
        self.port_names[dp.id] = names
        wan = self._find_wan(names)
        eng = self._engine(dp.id)
        eng.wan_port = wan
        if wan is None:
            self.logger.warning("switch %016x: no WAN port found (ports %s); the device of a "
                                "session is its client", dp.id, names)
            return
        self.wan_ports[dp.id] = wan
        self.logger.info("switch %016x: WAN port %d (%s)", dp.id, wan, names.get(wan))
        if CONF.egw_wan_htb:
            self._setup_htb(names.get(wan))

    @staticmethod
    def _find_wan(names: dict[int, str]) -> int | None:
        want = (CONF.egw_wan_port or "").strip()
        if want:
            if want.isdigit():
                return int(want)
            for no, name in names.items():
                if name == want:
                    return no
            return None
        for no, name in sorted(names.items()):
            if any(h in name.lower() for h in WAN_NAME_HINTS):
                return no
        return None

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        try:
            in_port = msg.match["in_port"]
            if msg.table_id == SESSION_TABLE:
                msgs = self._engine(dp.id).mirror_packet(in_port, bytes(msg.data))
                if msgs:
                    self._send(dp, msgs)
                if self._engine(dp.id).has_pending() and not self._flush_scheduled:
                    self._flush_scheduled = True
                    hub.spawn(self._flush)
            else:
                self.metrics.packet_ins.labels("forward").inc()
                self._forward(dp, msg, in_port)
        except Exception as exc:
            self.faults.report("packet_in", exc, "packet-in not handled")

    def _forward(self, dp, msg, in_port):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        macs = R.frame_macs(bytes(msg.data))
        if macs is None:            # shorter than an Ethernet header: nothing to forward
            self.metrics.errors.labels("malformed").inc()
            return
        out, rules = self.l2.packet(dp.id, in_port, *macs)
        self._send(dp, rules)
        out_port = ofp.OFPP_FLOOD if out == R.OFPP_FLOOD else out
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=msg.buffer_id, in_port=in_port,
                                        actions=[parser.OFPActionOutput(out_port)], data=data))

    def _flush(self):
        self._flush_scheduled = False
        for dpid, eng in list(self.engines.items()):
            dp = self.datapaths.get(dpid)
            if dp is not None and eng.has_pending():
                self._send(dp, eng.flush())

    def _ticker(self):
        while True:
            hub.sleep(0.25)
            if self._restore:
                self._restore_timeouts()
            for dpid, eng in list(self.engines.items()):
                dp = self.datapaths.get(dpid)
                try:
                    msgs = eng.tick()
                    if dp is not None and msgs:
                        self._send(dp, msgs)
                except Exception as exc:
                    self.faults.report("tick", exc, "tick failed")

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, ev):
        msg = ev.msg
        dp = msg.datapath
        eng = self.engines.get(dp.id)
        if eng is not None:
            self._send(dp, eng.flow_removed(msg.cookie, msg.packet_count, msg.byte_count))

    def _stats_poller(self):
        while True:
            hub.sleep(CONF.egw_stats_interval)
            for dp in list(self.datapaths.values()):
                try:
                    parser = dp.ofproto_parser
                    dp.send_msg(parser.OFPFlowStatsRequest(
                        dp, table_id=SESSION_TABLE, cookie=R.COOKIE_TAG,
                        cookie_mask=R.COOKIE_TAG_MASK))
                except Exception:
                    pass

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _flow_stats(self, ev):
        dp = ev.msg.datapath
        st = self._restore.get(dp.id)
        if st is not None and ev.msg.xid == st["flow_xid"]:
            flows = [self._plain_flow(dp, f) for f in ev.msg.body]
            self._restore_reply(dp, "flows", flows,
                                bool(ev.msg.flags & dp.ofproto.OFPMPF_REPLY_MORE))
            return
        eng = self.engines.get(dp.id)
        if eng is not None:
            for st in ev.msg.body:
                eng.flow_stats(st.cookie, st.packet_count, st.byte_count)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev):
        msg = ev.msg
        self.faults.report("openflow", f"switch {msg.datapath.id:016x} OpenFlow error "
                           f"type={msg.type} code={msg.code}", "switch error",
                           cause=f"type={msg.type} code={msg.code}")

    # ---- policy --------------------------------------------------------------
    def _on_sighup(self, *_):
        self._sighup = True

    def _on_sigterm(self, *_):
        # ryu-manager has no SIGTERM handling: remove what we set up, then exit.
        self._teardown_htb()
        logging.shutdown()
        os._exit(0)

    def _policy_watcher(self):
        while True:
            hub.sleep(min(x for x in (CONF.egw_policy_watch, CONF.egw_model_watch) if x > 0))
            try:
                if self._sighup:
                    self._sighup = False
                    self.reload_policy("SIGHUP")
                    self.reload_model("SIGHUP")
                    continue
                if CONF.egw_policy_watch > 0 and self.policy_holder.changed_on_disk():
                    self.reload_policy("file change")
                if (CONF.egw_model_watch > 0 and self.model is not None
                        and self.model.changed_on_disk()):
                    self.reload_model("file change")
            except Exception as exc:
                self.faults.report("reload", exc, "reload failed")

    def reload_model(self, trigger: str) -> tuple[bool, str]:
        """Re-read the model bundle; a bad one is rejected, the running model kept."""
        if self.model is None:
            return False, "no model bundle configured"
        ok, msg = self.model.load()
        if not ok:
            self.metrics.model_reloads.labels("rejected").inc()
            self.faults.report("model", msg, f"model reload ({trigger})")
            return False, msg
        self.metrics.model_reloads.labels("ok").inc()
        self.logger.info("model reload (%s): %s", trigger, msg)
        b = self.bundle
        for dpid, eng in list(self.engines.items()):
            msgs = eng.set_model(b.preprocess, self.model.classify)
            eng.mirror_max_packets = CONF.egw_mirror_max_packets
            dp = self.datapaths.get(dpid)
            if dp is not None:
                self._send(dp, msgs)
        return True, msg

    def reload_policy(self, trigger: str) -> tuple[bool, str]:
        """Re-read the policy file; a good one is applied to existing sessions too."""
        res = self.policy_holder.reload()
        if res.error:
            self.metrics.policy_reloads.labels("rejected").inc()
            self.logger.error("policy reload (%s) rejected, keeping the running policy: %s",
                              trigger, res.error)
            return False, res.error
        self.metrics.policy_reloads.labels("ok").inc()
        self.logger.info("policy reload (%s): %s", trigger, res.summary())
        updated = 0
        for dpid, eng in list(self.engines.items()):
            msgs = eng.set_enforcer(self._enforcer())
            updated += sum(isinstance(m, R.FlowRule) for m in msgs) // 2
            dp = self.datapaths.get(dpid)
            if dp is not None:
                self._send(dp, msgs)
        if res.wan_changed and CONF.egw_wan_htb and self.htb_dev:
            self._setup_htb(self.htb_dev)
        msg = f"{res.summary()} ({updated} session(s) updated)"
        self.logger.info("policy reload (%s) applied: %d session(s) updated", trigger, updated)
        return True, msg

    # ---- WAN HTB ---------------------------------------------------------------
    def _setup_htb(self, dev: str | None) -> None:
        from policies.wan import tc_commands, tc_teardown

        if not dev or not os.path.exists(f"/sys/class/net/{dev}"):
            self.logger.info("WAN port %s is not a local interface: no HTB set up", dev)
            return
        for argv in tc_teardown(dev):
            subprocess.run(argv, capture_output=True)
        for argv in tc_commands(self.policy_holder.current.wan, dev):
            r = subprocess.run(argv, capture_output=True, text=True)
            if r.returncode != 0:
                self.metrics.errors.labels("tc").inc()
                self.logger.error("%s failed: %s", " ".join(argv), r.stderr.strip())
                return
        self.htb_dev = dev
        self.logger.info("WAN HTB set up on %s", dev)

    def _teardown_htb(self) -> None:
        dev, self.htb_dev = self.htb_dev, None
        if not dev:
            return
        from policies.wan import tc_teardown

        for argv in tc_teardown(dev):
            subprocess.run(argv, capture_output=True)
        self.logger.info("WAN HTB removed from %s", dev)

    def stop(self):
        for t in self._loops:
            hub.kill(t)
        self._loops = []
        self._teardown_htb()
        super().stop()

    # ---- REST views ------------------------------------------------------------
    def all_sessions(self) -> list[dict]:
        out = []
        for dpid, eng in self.engines.items():
            for s in eng.sessions():
                s["dpid"] = f"{dpid:016x}"
                out.append(s)
        return out

    def all_stats(self) -> dict:
        return {f"{dpid:016x}": eng.stats() for dpid, eng in self.engines.items()}

    def health(self) -> dict:
        return {"ok": True, "switches": [f"{d:016x}" for d in self.datapaths],
                "model": str(self.bundle.path) if self.bundle is not None else None,
                "model_error": self.model.last_error if self.model is not None else None,
                "policy_error": self.policy_holder.last_error,
                "errors": self.faults.describe(),
                "labels": self.bundle.labels if self.bundle is not None else [],
                "policy": str(self.policy_path), "wan_ports": self.wan_ports,
                "htb": self.htb_dev, "time": time.time()}

    def policy_view(self) -> dict:
        return {"path": str(self.policy_path),
                "last_error": self.policy_holder.last_error,
                "policy": self.policy_holder.current.model_dump(mode="json")}
