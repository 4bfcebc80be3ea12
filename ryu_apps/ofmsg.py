"""OpenFlow 1.3 translation: the gateway's plain messages to Ryu messages and back.

The pure logic (``ryu_apps/gateway``) speaks :class:`~ryu_apps.gateway.rules.FlowRule`,
:class:`~ryu_apps.gateway.rules.MeterRule`, :class:`~ryu_apps.gateway.rules.ReadRequest`
and :class:`~ryu_apps.gateway.rules.PacketOut`; this module turns them into Ryu
``OFPFlowMod`` / ``OFPMeterMod`` / multipart requests / ``OFPPacketOut``
(:func:`to_ofp`), and flow-stats and meter-config reply bodies back into
``FlowRule`` / ``MeterRule`` (:func:`flow_rule`, :func:`meter_rule`).

It needs no live switch: every function takes any object carrying ``ofproto`` and
``ofproto_parser`` (a Ryu ``Datapath``, or :func:`null_datapath` in tests, as
Faucet's tests do), so the messages are built and ``serialize()``-d in unit tests.
Imports Ryu's OpenFlow 1.3 codec only (no eventlet, no controller).
"""
from __future__ import annotations

from types import SimpleNamespace

from ryu.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from ryu_apps.gateway.rules import (COOKIE_TAG, COOKIE_TAG_MASK, OFPP_FLOOD, SESSION_TABLE,
                                    FlowRule, Message, MeterRule, PacketOut, ReadRequest)


def null_datapath(dpid: int | None = None):
    """A stand-in for a Ryu ``Datapath``: enough to build and serialize messages."""
    return SimpleNamespace(id=dpid, ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser)


def to_ofp(dp, m: Message):
    """The Ryu message for one plain message (``dp``: a datapath or a null one)."""
    if isinstance(m, MeterRule):
        return _meter_mod(dp, m)
    if isinstance(m, ReadRequest):
        return _read_request(dp, m)
    if isinstance(m, PacketOut):
        return _packet_out(dp, m)
    return _flow_mod(dp, m)


def _meter_mod(dp, m: MeterRule):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if m.command == "delete_all":
        return parser.OFPMeterMod(dp, command=ofp.OFPMC_DELETE, meter_id=ofp.OFPM_ALL)
    cmd = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY,
           "delete": ofp.OFPMC_DELETE}[m.command]
    flags = ((ofp.OFPMF_PKTPS if m.pktps else ofp.OFPMF_KBPS)
             | (ofp.OFPMF_BURST if m.burst_kb else 0))
    bands = [] if m.command == "delete" else [
        parser.OFPMeterBandDrop(rate=int(m.rate_kbps), burst_size=int(m.burst_kb or 0))]
    return parser.OFPMeterMod(dp, command=cmd, flags=flags, meter_id=m.meter_id, bands=bands)


def _actions(dp, actions) -> list:
    ofp, parser = dp.ofproto, dp.ofproto_parser
    out = []
    for a in actions:
        if a[0] == "output":
            port = ofp.OFPP_FLOOD if a[1] == OFPP_FLOOD else a[1]
            out.append(parser.OFPActionOutput(port))
        elif a[0] == "controller":
            out.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER))
        elif a[0] == "set_field":
            out.append(parser.OFPActionSetField(**{a[1]: a[2]}))
        elif a[0] == "set_queue":
            out.append(parser.OFPActionSetQueue(a[1]))
        else:
            raise ValueError(f"unknown action {a!r}")
    return out


def _flow_mod(dp, m: FlowRule):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if m.command == "delete_all":
        return parser.OFPFlowMod(datapath=dp, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL,
                                 out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                                 match=parser.OFPMatch())
    match = parser.OFPMatch(**m.match)
    if m.command == "delete":
        return parser.OFPFlowMod(datapath=dp, command=ofp.OFPFC_DELETE_STRICT, table_id=m.table,
                                 priority=m.priority, match=match, out_port=ofp.OFPP_ANY,
                                 out_group=ofp.OFPG_ANY)
    inst = []
    if m.meter is not None:
        inst.append(parser.OFPInstructionMeter(m.meter, ofp.OFPIT_METER))
    acts = _actions(dp, m.actions)
    if acts:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, acts))
    if m.goto is not None:
        inst.append(parser.OFPInstructionGotoTable(m.goto))
    return parser.OFPFlowMod(datapath=dp, command=ofp.OFPFC_ADD, table_id=m.table,
                             priority=m.priority, match=match, instructions=inst,
                             cookie=m.cookie, idle_timeout=m.idle_timeout,
                             hard_timeout=m.hard_timeout,
                             flags=ofp.OFPFF_SEND_FLOW_REM if m.send_flow_rem else 0,
                             buffer_id=ofp.OFP_NO_BUFFER)


def _read_request(dp, m: ReadRequest):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if m.what == "flows":
        req = parser.OFPFlowStatsRequest(dp, table_id=ofp.OFPTT_ALL, out_port=ofp.OFPP_ANY,
                                         out_group=ofp.OFPG_ANY)
    elif m.what == "session_stats":
        req = parser.OFPFlowStatsRequest(dp, table_id=SESSION_TABLE, cookie=COOKIE_TAG,
                                         cookie_mask=COOKIE_TAG_MASK)
    elif m.what == "meters":
        req = parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL)
    elif m.what == "controller_meter":
        req = parser.OFPMeterStatsRequest(dp, 0, ofp.OFPM_CONTROLLER)
    elif m.what == "ports":
        req = parser.OFPPortDescStatsRequest(dp, 0)
    else:
        raise ValueError(f"unknown read request {m.what!r}")
    if m.xid is not None:
        req.xid = m.xid           # Datapath.send_msg keeps an xid that is already set
    return req


def _packet_out(dp, m: PacketOut):
    ofp, parser = dp.ofproto, dp.ofproto_parser
    buffer_id = ofp.OFP_NO_BUFFER if m.buffer_id is None else m.buffer_id
    return parser.OFPPacketOut(datapath=dp, buffer_id=buffer_id, in_port=m.in_port,
                               actions=_actions(dp, [("output", m.out_port)]),
                               data=m.data if buffer_id == ofp.OFP_NO_BUFFER else None)


# ---- replies -> plain messages ----------------------------------------------------
def flow_rule(dp, st) -> FlowRule:
    """One ``OFPFlowStats`` entry (flow-stats reply body) as a :class:`FlowRule`."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    actions, goto, meter = [], None, None
    for inst in st.instructions:
        if isinstance(inst, parser.OFPInstructionMeter):
            meter = inst.meter_id
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            goto = inst.table_id
        elif isinstance(inst, parser.OFPInstructionActions):
            for a in inst.actions:
                if isinstance(a, parser.OFPActionOutput):
                    actions.append(("controller",) if a.port == ofp.OFPP_CONTROLLER
                                   else ("output", OFPP_FLOOD if a.port == ofp.OFPP_FLOOD
                                         else a.port))
                elif isinstance(a, parser.OFPActionSetField):
                    actions.append(("set_field", a.key, a.value))
                elif isinstance(a, parser.OFPActionSetQueue):
                    actions.append(("set_queue", a.queue_id))
                else:
                    actions.append(("other", type(a).__name__))
    return FlowRule(st.table_id, st.priority, dict(st.match.items()), tuple(actions), goto,
                    meter, st.idle_timeout, st.hard_timeout, st.cookie,
                    bool(st.flags & ofp.OFPFF_SEND_FLOW_REM),
                    packet_count=int(st.packet_count), byte_count=int(st.byte_count))


def meter_rule(dp, m) -> MeterRule:
    """One ``OFPMeterConfigStats`` entry (meter-config reply body) as a :class:`MeterRule`."""
    ofp = dp.ofproto
    band = m.bands[0] if m.bands else None
    return MeterRule(m.meter_id, int(band.rate) if band else 0,
                     int(band.burst_size) if band and (m.flags & ofp.OFPMF_BURST) else None,
                     pktps=bool(m.flags & ofp.OFPMF_PKTPS))


def port_names(dp, ports) -> dict[int, str]:
    """``{port number: name}`` of a port-description reply body (physical ports only)."""
    return {p.port_no: p.name.decode(errors="replace") if isinstance(p.name, bytes)
            else str(p.name) for p in ports if p.port_no < dp.ofproto.OFPP_MAX}


def buffer_id(dp, bid: int) -> int | None:
    """A packet-in's buffer id, None when the switch sent the whole frame."""
    return None if bid == dp.ofproto.OFP_NO_BUFFER else bid


def reply_more(dp, msg) -> bool:
    """Whether a multipart reply has more parts to come."""
    return bool(msg.flags & dp.ofproto.OFPMPF_REPLY_MORE)
