"""Reference reactive Ryu app (OpenFlow 1.3): one exact 5-tuple flow per packet-in.

The usual design: every new TCP/UDP session's first packet goes to the controller,
which installs a 5-tuple flow toward the learnt port and sends the packet out, so
the first packet waits for a controller round trip. Used by benchmarks/bench_gateway.py.
"""
from __future__ import annotations

from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from ryu.lib.packet import ethernet, ipv4, packet, tcp, udp
from ryu.ofproto import ofproto_v1_3


class Reactive5Tuple(app_manager.RyuApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mac_to_port: dict[int, dict[str, int]] = {}
        self.packet_ins = 0

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(parser.OFPFlowMod(
            datapath=dp, priority=0, match=parser.OFPMatch(),
            instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
                parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])]))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        self.packet_ins += 1
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match["in_port"]
        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None:
            return
        table = self.mac_to_port.setdefault(dp.id, {})
        table[eth.src] = in_port
        out = table.get(eth.dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out)]
        ip = pkt.get_protocol(ipv4.ipv4)
        l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
        if out != ofp.OFPP_FLOOD and ip is not None and l4 is not None:
            if isinstance(l4, tcp.tcp):
                ports = {"tcp_src": l4.src_port, "tcp_dst": l4.dst_port}
            else:
                ports = {"udp_src": l4.src_port, "udp_dst": l4.dst_port}
            match = parser.OFPMatch(in_port=in_port, eth_type=0x0800, ip_proto=ip.proto,
                                    ipv4_src=ip.src, ipv4_dst=ip.dst, **ports)
            dp.send_msg(parser.OFPFlowMod(
                datapath=dp, priority=10, match=match, idle_timeout=60,
                instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]))
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=ofp.OFP_NO_BUFFER,
                                        in_port=in_port, actions=actions, data=msg.data))
