"""sdn-egw Ryu application (OpenFlow 1.3): ``ryu-manager ryu_apps/egw.py``.

Glue only: each handler decodes a Ryu event, calls the pure logic
(:class:`ryu_apps.gateway.core.Gateway` and its per-switch engines) and sends the
plain messages it returns through :mod:`ryu_apps.ofmsg`; the hub loops only
schedule the logic's periodic work. See docs/gateway.md for the table layout,
options (ryu_apps/egw_flags.py), REST API and metrics.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal

from oslo_config import cfg as oslo_cfg
from ryu import cfg  # ryu.cfg.CONF is its own ConfigOpts (not oslo_config.cfg.CONF)
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                    set_ev_cls)
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3

from ryu_apps import egw_flags, ofmsg
from ryu_apps.gateway.auth import ENV_TOKEN, Guard, find_token
from ryu_apps.gateway.core import Gateway
from ryu_apps.gateway.rest import APP_KEY, GatewayController, set_socket_timeout
from ryu_apps.gateway.rules import SESSION_TABLE

CONF = cfg.CONF
egw_flags.register(CONF)
# The REST API listens on loopback unless --wsapi-host (or the config file) says otherwise.
try:
    CONF.set_default("wsapi_host", "127.0.0.1")
except oslo_cfg.NoSuchOptError:  # pragma: no cover - ryu.app.wsgi registers it
    pass

MULTIPART = [CONFIG_DISPATCHER, MAIN_DISPATCHER]


class EdgeGateway(app_manager.RyuApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logger.setLevel(logging.INFO)
        logging.getLogger("egw.engine").setLevel(logging.INFO)
        self.gw = Gateway(CONF, self.logger)
        self.metrics = self.gw.metrics
        token, source = find_token(CONF.egw_api_token_file, CONF.egw_api_token or "",
                                   logger=self.logger)
        self.guard = Guard(token, metrics_open=CONF.egw_metrics_open,
                           delay=CONF.egw_api_fail_delay, sleep=hub.sleep, logger=self.logger)
        self.logger.info("REST API token: %s", {"file": "from the token file", "env":
                         f"from ${ENV_TOKEN}", "argument": "from egw_api_token (discouraged)"}
                         .get(source, "none: every endpoint but /egw/health answers 403"))
        self.datapaths: dict[int, object] = {}
        self._flush_scheduled = False
        kwargs["wsgi"].register(GatewayController, {APP_KEY: self})
        set_socket_timeout(CONF.egw_api_socket_timeout, self.logger)
        # Own loops (not in self.threads: RyuApp.stop joins those), killed in stop().
        self._loops = [hub.spawn(self._every, 0.25, self.gw.tick)]
        watch = [x for x in (CONF.egw_policy_watch, CONF.egw_model_watch) if x > 0]
        if watch:
            self._loops.append(hub.spawn(self._every, min(watch), self.gw.watch))
        if CONF.egw_stats_interval > 0:
            self._loops.append(hub.spawn(self._every, CONF.egw_stats_interval,
                                         self.gw.poll_stats))
        try:
            signal.signal(signal.SIGHUP, self._on_sighup)
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread (tests)
            pass
        atexit.register(self.gw.htb.teardown)

    # ---- sending ---------------------------------------------------------------
    def _send(self, dp, msgs) -> None:
        for m in msgs:
            try:
                dp.send_msg(ofmsg.to_ofp(dp, m))
            except Exception as exc:  # never let one bad message kill the app
                self.gw.faults.report("openflow", exc, f"cannot send {type(m).__name__}")

    def _send_all(self, outbox) -> None:
        for dpid, msgs in outbox.items():
            if msgs and dpid in self.datapaths:
                self._send(self.datapaths[dpid], msgs)

    def _every(self, seconds, work):
        while True:
            hub.sleep(seconds)
            self._send_all(work())

    def _flush(self):
        self._flush_scheduled = False
        self._send_all(self.gw.flush())

    # ---- switch events -----------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _switch_features(self, ev):
        dp = ev.msg.datapath
        self.datapaths[dp.id] = dp
        self._send(dp, self.gw.switch_connected(dp.id))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _switch_gone(self, ev):
        dp = ev.datapath
        if dp.id is not None and self.datapaths.get(dp.id) is dp:
            del self.datapaths[dp.id]
            self.gw.switch_disconnected(dp.id)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc(self, ev):
        dp = ev.msg.datapath
        self.gw.ports(dp.id, ofmsg.port_names(dp, ev.msg.body))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg, dp = ev.msg, ev.msg.datapath
        try:
            eng, in_port = self.gw.engine(dp.id), msg.match["in_port"]
            self._send_all(self.gw.device_packet(dp.id, in_port, bytes(msg.data)))
            if msg.table_id != SESSION_TABLE:
                self._send(dp, eng.forward(in_port, bytes(msg.data),
                                           ofmsg.buffer_id(dp, msg.buffer_id)))
                return
            if self.gw.devices.dns_copy(msg.cookie):
                return                 # copied for a quarantined device's DNS only
            self._send(dp, eng.mirror_packet(in_port, bytes(msg.data)))
            if eng.has_pending() and not self._flush_scheduled:
                self._flush_scheduled = True
                hub.spawn(self._flush)
        except Exception as exc:
            self.gw.faults.report("packet_in", exc, "packet-in not handled")

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, ev):
        msg, dp = ev.msg, ev.msg.datapath
        eng = self.gw.engines.get(dp.id)
        if eng is not None:
            self._send(dp, eng.flow_removed(msg.cookie, msg.packet_count, msg.byte_count))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MULTIPART)
    def _flow_stats(self, ev):
        msg, dp = ev.msg, ev.msg.datapath
        eng = self.gw.engines.get(dp.id)
        if eng is not None and eng.awaits("flows", msg.xid):
            flows = [ofmsg.flow_rule(dp, st) for st in msg.body]
            self._send(dp, self.gw.readback_reply(dp.id, "flows", msg.xid, flows,
                                                  ofmsg.reply_more(dp, msg)))
        elif eng is not None:
            for st in msg.body:
                eng.flow_stats(st.cookie, st.packet_count, st.byte_count)

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MULTIPART)
    def _meter_config(self, ev):
        msg, dp = ev.msg, ev.msg.datapath
        meters = [ofmsg.meter_rule(dp, m) for m in msg.body]
        self._send(dp, self.gw.readback_reply(dp.id, "meters", msg.xid, meters,
                                              ofmsg.reply_more(dp, msg)))

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MULTIPART)
    def _meter_stats(self, ev):
        msg, dp = ev.msg, ev.msg.datapath
        eng = self.gw.engines.get(dp.id)
        for st in msg.body:
            if eng is not None and st.meter_id == dp.ofproto.OFPM_CONTROLLER:
                eng.controller_meter_stats(sum(b.packet_band_count for b in st.band_stats))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev):
        msg = ev.msg
        self.gw.faults.report("openflow", f"switch {msg.datapath.id:016x} OpenFlow error "
                              f"type={msg.type} code={msg.code}", "switch error",
                              cause=f"type={msg.type} code={msg.code}")

    # ---- signals, stop -------------------------------------------------------------
    def _on_sighup(self, *_):
        self.gw.sighup = True

    def _on_sigterm(self, *_):
        # ryu-manager has no SIGTERM handling. The signal may land inside eventlet's hub,
        # where a blocking call (tc's subprocess) raises: shut down in a green thread.
        hub.spawn(self._shutdown)

    def _shutdown(self):
        """Remove what we set up, then exit."""
        self.gw.htb.teardown()
        self.gw.audit.close()       # every line is already flushed; this only closes it
        logging.shutdown()
        os._exit(0)

    def stop(self):
        for t in self._loops:
            hub.kill(t)
        self._loops = []
        self.gw.htb.teardown()
        super().stop()

    # ---- what the REST API calls -----------------------------------------------------
    def reload_policy(self, trigger: str) -> tuple[bool, str]:
        ok, message, outbox = self.gw.reload_policy(trigger)
        self._send_all(outbox)
        return ok, message

    def health(self) -> dict:
        return self.gw.health(self.datapaths)

    def approve_device(self, mac: str) -> dict | None:
        view, out = self.gw.approve_device(mac)
        self._send_all(out)
        return view

    def status(self) -> dict:
        return self.gw.status(self.datapaths)
