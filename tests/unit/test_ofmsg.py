"""OpenFlow translation (ryu_apps.ofmsg) without a switch: every message kind the engine
produces is built on a null datapath and serialize()d (as Faucet's tests do), and
rules and meters survive the trip FlowRule -> OFPFlowMod bytes -> flow-stats reply
bytes -> Ryu's parser -> FlowRule (likewise meters through a meter-config reply)."""
from __future__ import annotations

import struct

import pytest

pytest.importorskip("ryu")

from ryu.ofproto import ofproto_parser, ofproto_v1_3 as ofp  # noqa: E402

from ryu_apps import ofmsg  # noqa: E402
from ryu_apps.gateway.rules import (CONTROLLER_METER, OFPP_FLOOD, FlowRule,  # noqa: E402
                                    MeterRule, PacketOut, ReadRequest, base_pipeline,
                                    clear_all, controller_meter)
from tests.unit.test_gateway_engine import (LAN, MAC_C, MAC_S, POLICY, WAN,  # noqa: E402
                                            FakeClassifier, frame, policy_enforcer)

DP = ofmsg.null_datapath(1)
HDR = struct.calcsize(ofp.OFP_HEADER_PACK_STR)


def _engine_messages() -> list:
    """What a connect, four classified sessions (EF, class meter, drop, session meter),
    L2 forwarding, a policy change and the sessions' end make the engine send."""
    from classifier.preprocess import Preprocess
    from ryu_apps.gateway.engine import GatewayEngine

    clf = FakeClassifier()
    eng = GatewayEngine(Preprocess(repr="packet1480"), clf, policy_enforcer(), wan_port=WAN,
                        clock=lambda: 0.0, packet_in_rate=500, packet_in_burst=100)
    msgs = eng.switch_connected(fresh=True)
    msgs += eng.switch_connected(fresh=True, readback=True)
    msgs += eng.tick(now=10.0)                      # read-back timed out: cleared
    for i, label in enumerate(("voip", "streaming", "p2p", "bulk")):
        clf.label = label
        msgs += eng.mirror_packet(LAN, frame(proto=17, sport=5000 + i, payload=b"x" * 300),
                                  now=11.0)
        msgs += eng.flush(11.0)
    msgs += eng.forward(LAN, frame(), None)
    msgs += eng.forward(WAN, frame(smac=MAC_S, dmac=MAC_C), 7)
    msgs += eng.set_enforcer(policy_enforcer(POLICY.replace("kbps: 5000", "kbps: 4000")))
    msgs += eng.stats_requests()
    for s in list(eng.table):
        for d in (0, 1):
            msgs += eng.flow_removed(((0x4547 << 48) | (s.sid << 1) | d))
    return msgs


def _flow_stats_reply(mod_buf: bytes) -> bytes:
    """The flow-stats reply a switch would send for the flow an OFPFlowMod installed."""
    (cookie, _mask, table, _cmd, idle, hard, prio, _buf, _out, _grp, flags
     ) = struct.unpack_from(ofp.OFP_FLOW_MOD_PACK_STR0, mod_buf, HDR)
    rest = mod_buf[HDR + struct.calcsize(ofp.OFP_FLOW_MOD_PACK_STR0):]   # match + instructions
    entry = struct.pack(ofp.OFP_FLOW_STATS_0_PACK_STR, ofp.OFP_FLOW_STATS_0_SIZE + len(rest),
                        table, 1, 0, prio, idle, hard, flags, cookie, 3, 300) + rest
    return _multipart(ofp.OFPMP_FLOW, entry)


def _meter_config_reply(mod_buf: bytes) -> bytes:
    """The meter-config reply for the meter an OFPMeterMod created (same layout but the
    command field holds the entry's length)."""
    body = mod_buf[HDR:]
    return _multipart(ofp.OFPMP_METER_CONFIG, struct.pack("!H", len(body)) + body[2:])


def _multipart(kind: int, body: bytes) -> bytes:
    n = HDR + struct.calcsize(ofp.OFP_MULTIPART_REPLY_PACK_STR) + len(body)
    return (struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY,
                        n, 42)
            + struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, kind, 0) + body)


def _parse(buf: bytes):
    version, msg_type, length, xid = struct.unpack_from(ofp.OFP_HEADER_PACK_STR, buf)
    return ofproto_parser.msg(DP, version, msg_type, length, xid, buf)


def _serialized(m):
    o = ofmsg.to_ofp(DP, m)
    o.serialize()
    assert len(o.buf) >= HDR and o.buf[0] == ofp.OFP_VERSION
    return o


def test_every_engine_message_serializes_and_rules_round_trip():
    msgs = _engine_messages()
    kinds = set()
    for m in msgs:
        o = _serialized(m)
        kinds.add((type(m).__name__, getattr(m, "command", getattr(m, "what", ""))))
        if isinstance(m, FlowRule) and m.command == "add":
            reply = _parse(_flow_stats_reply(o.buf))
            assert [ofmsg.flow_rule(DP, st) for st in reply.body] == [m]
            assert not ofmsg.reply_more(DP, reply)
        elif isinstance(m, MeterRule) and m.command == "add":
            reply = _parse(_meter_config_reply(o.buf))
            back = ofmsg.meter_rule(DP, reply.body[0])
            assert back == MeterRule(m.meter_id, m.rate_kbps, m.burst_kb, pktps=m.pktps)
    assert {("FlowRule", "add"), ("FlowRule", "delete_all"), ("MeterRule", "add"),
            ("MeterRule", "delete"), ("MeterRule", "delete_all"), ("ReadRequest", "flows"),
            ("ReadRequest", "meters"), ("ReadRequest", "ports"),
            ("ReadRequest", "session_stats"), ("PacketOut", "")} <= kinds, kinds
    actions = {a[0] for m in msgs if isinstance(m, FlowRule) for a in m.actions}
    assert {"output", "controller", "set_field"} <= actions   # set_queue: test_flow_mod_fields
    assert any(isinstance(m, FlowRule) and m.is_drop and m.command == "add" for m in msgs)
    assert any(isinstance(m, FlowRule) and m.meter is not None for m in msgs)


def test_flow_mod_fields():
    drop = FlowRule(0, 100, {"eth_type": 0x0800, "ip_proto": 17, "ipv4_src": "10.0.0.2",
                             "ipv4_dst": "10.0.0.1", "udp_src": 5, "udp_dst": 6},
                    idle_timeout=30, cookie=0x4547 << 48 | 7, send_flow_rem=True)
    o = _serialized(drop)
    assert o.instructions == [] and o.command == ofp.OFPFC_ADD
    assert o.flags == ofp.OFPFF_SEND_FLOW_REM and o.buffer_id == ofp.OFP_NO_BUFFER
    full = FlowRule(0, 100, {"eth_type": 0x86DD, "ip_proto": 6, "ipv6_src": "fe80::1",
                             "ipv6_dst": "fe80::2", "tcp_src": 1, "tcp_dst": 2},
                    actions=(("set_field", "ip_dscp", 46), ("set_queue", 1)), goto=1, meter=3)
    o = _serialized(full)
    assert [type(i).__name__ for i in o.instructions] == [
        "OFPInstructionMeter", "OFPInstructionActions", "OFPInstructionGotoTable"]
    (back,) = _parse(_flow_stats_reply(o.buf)).body
    assert ofmsg.flow_rule(DP, back) == full
    o = _serialized(FlowRule(0, 100, dict(drop.match), command="delete"))
    assert o.command == ofp.OFPFC_DELETE_STRICT and o.out_port == ofp.OFPP_ANY
    o = _serialized(clear_all()[0])
    assert o.command == ofp.OFPFC_DELETE and o.table_id == ofp.OFPTT_ALL
    for r in base_pipeline([53]):
        (back,) = _parse(_flow_stats_reply(_serialized(r).buf)).body
        assert ofmsg.flow_rule(DP, back) == r


def test_meter_mods():
    for m in [MeterRule(5, 4000, 500), MeterRule(6, 1000, None),
              MeterRule(5, 2000, 200, command="modify"), *controller_meter(500, 100)]:
        o = _serialized(m)
        if m.command != "delete":
            (back,) = _parse(_meter_config_reply(o.buf)).body
            assert ofmsg.meter_rule(DP, back) == MeterRule(m.meter_id, m.rate_kbps,
                                                           m.burst_kb, pktps=m.pktps)
    o = _serialized(MeterRule(5, command="delete"))
    assert o.command == ofp.OFPMC_DELETE and o.bands == []
    o = _serialized(MeterRule(0, command="delete_all"))
    assert o.meter_id == ofp.OFPM_ALL
    o = _serialized(controller_meter(500, 100)[1])
    assert o.meter_id == CONTROLLER_METER and o.flags & ofp.OFPMF_PKTPS


def test_requests_and_packet_out():
    o = _serialized(ReadRequest("flows", xid=1234))
    assert o.xid == 1234 and o.table_id == ofp.OFPTT_ALL
    assert struct.unpack_from("!I", o.buf, 4)[0] == 1234
    o = _serialized(ReadRequest("session_stats"))
    assert o.table_id == 0 and o.cookie_mask == 0xFFFF << 48
    assert _serialized(ReadRequest("meters", 9)).meter_id == ofp.OFPM_ALL
    _serialized(ReadRequest("ports"))
    with pytest.raises(ValueError):
        ofmsg.to_ofp(DP, ReadRequest("nonsense"))
    o = _serialized(PacketOut(1, OFPP_FLOOD, b"\x00" * 60))
    assert o.actions[0].port == ofp.OFPP_FLOOD and o.data == b"\x00" * 60
    o = _serialized(PacketOut(1, 2, b"", buffer_id=7))
    assert o.buffer_id == 7 and o.data is None
    assert ofmsg.buffer_id(DP, ofp.OFP_NO_BUFFER) is None and ofmsg.buffer_id(DP, 7) == 7
