"""Foundation: the real ``ryu-manager ryu_apps/egw.py`` forwards ping and TCP on OVS."""
from __future__ import annotations

import pytest
from mininet.topo import Topo

from topologies.controller import RyuProcess
from topologies.mininet_net import build_net, wait_connected
from topologies.traffic import iperf3_client, iperf3_server, parse_iperf3


class TwoHosts(Topo):
    def build(self):
        sw = self.addSwitch("egwf1")
        for i in (1, 2):
            self.addLink(self.addHost(f"fh{i}", ip=f"10.77.0.{i}/24"), sw)


@pytest.mark.timeout(120)
def test_ping_and_iperf3_through_egw(ovs, mininet_slot, tmp_path):
    with RyuProcess(log_path=tmp_path / "ryu.log") as ryu:
        net = build_net(TwoHosts(), ryu.of_port)
        try:
            net.start()
            assert wait_connected(net, timeout=20), ryu.log_tail()
            h1, h2 = net.get("fh1", "fh2")
            out = h1.cmd("ping -c 3 -i 0.2 -W 2", h2.IP())
            assert " 0% packet loss" in out, out + ryu.log_tail()

            server = iperf3_server(h2, 5201)
            try:
                rc, out = iperf3_client(h1, h2.IP(), 5201, 2).wait(timeout=30)
                flow = parse_iperf3("fh1->fh2", "fh1", "tcp", rc, out)
                assert rc == 0 and not flow.error, out
                assert flow.mbps > 1, f"TCP through the gateway only reached {flow.mbps} Mbit/s"
            finally:
                server.stop()

            flows = ovs.ofctl("egwf1", "dump-flows")
            assert "table=1" in flows and "goto_table:1" in flows, flows
        finally:
            net.stop()
    assert "Traceback" not in ryu.log_tail(200)
