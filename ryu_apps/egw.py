"""sdn-egw Ryu application (OpenFlow 1.3): ``ryu-manager ryu_apps/egw.py``.

Foundation version: an L2 learning switch with the gateway's two-table
layout (table 0 is reserved for per-session classification/enforcement rules
and only passes packets on to table 1, which forwards). The gateway issue
grows table 0.
"""
from __future__ import annotations

from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from ryu.lib.packet import ethernet, packet
from ryu.ofproto import ofproto_v1_3

SESSION_TABLE = 0
FORWARD_TABLE = 1


class EdgeGateway(app_manager.RyuApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mac_to_port: dict[int, dict[str, int]] = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _switch_features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self.mac_to_port.setdefault(dp.id, {})
        # Table 0: no session rules yet, hand everything to forwarding.
        self._add_flow(dp, SESSION_TABLE, 0, parser.OFPMatch(),
                       [parser.OFPInstructionGotoTable(FORWARD_TABLE)])
        # Table 1 miss: to the controller, which learns and floods.
        actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self._add_flow(dp, FORWARD_TABLE, 0, parser.OFPMatch(),
                       [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)])
        self.logger.info("switch %016x connected", dp.id)

    @staticmethod
    def _add_flow(dp, table, priority, match, instructions, idle=0, hard=0):
        parser = dp.ofproto_parser
        dp.send_msg(parser.OFPFlowMod(datapath=dp, table_id=table, priority=priority,
                                      match=match, instructions=instructions,
                                      idle_timeout=idle, hard_timeout=hard))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match["in_port"]
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if eth is None:
            return
        table = self.mac_to_port.setdefault(dp.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofp.OFPP_FLOOD:
            match = parser.OFPMatch(in_port=in_port, eth_dst=eth.dst)
            self._add_flow(dp, FORWARD_TABLE, 1, match,
                           [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)],
                           idle=300)
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=msg.buffer_id,
                                        in_port=in_port, actions=actions, data=data))
