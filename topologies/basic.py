"""The smallest check that the gateway forwards: one switch, a few hosts.

``egw emulate --topo basic`` starts a private Open vSwitch, a real
``ryu-manager ryu_apps/egw.py`` and a one-switch Mininet network, pings every
pair, runs one TCP iperf3 transfer through the gateway, and tears down only
what it started.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from mininet.topo import Topo

from topologies.controller import RyuProcess
from topologies.mininet_net import build_net, mininet_lock, wait_connected
from topologies.ovs_service import OvsService
from topologies.traffic import iperf3_client, iperf3_server, parse_iperf3

log = logging.getLogger(__name__)


class BasicTopo(Topo):
    """One gateway switch ``egw1`` with ``n`` hosts 10.0.0.1..n."""

    def build(self, n: int = 3):
        sw = self.addSwitch("egw1")
        for i in range(1, n + 1):
            self.addLink(self.addHost(f"h{i}", ip=f"10.0.0.{i}/24"), sw)


def run(duration: float = 3.0, report_dir: Path | None = None, hosts: int = 3) -> dict:
    results: dict = {"topo": "basic", "hosts": hosts}
    report_dir = Path(report_dir or "reports/basic")
    report_dir.mkdir(parents=True, exist_ok=True)
    with mininet_lock(), OvsService() as ovs:
        ovs.activate()
        with RyuProcess(log_path=report_dir / "ryu-manager.log") as ryu:
            net = build_net(BasicTopo(n=hosts), ryu.of_port)
            try:
                net.start()
                if not wait_connected(net, timeout=20):
                    raise RuntimeError("switch never connected:\n" + ryu.log_tail())
                t0 = time.monotonic()
                loss = net.pingAll(timeout=2)
                results["ping_loss_percent"] = loss
                results["ping_all_s"] = round(time.monotonic() - t0, 2)
                h1, h2 = net.get("h1", "h2")
                server = iperf3_server(h2, 5201)
                try:
                    rc, out = iperf3_client(h1, h2.IP(), 5201, duration).wait(
                        timeout=duration + 30)
                finally:
                    server.stop()
                flow = parse_iperf3("h1->h2", "h1", "tcp", rc, out)
                if flow.error or rc != 0:
                    results["tcp_error"] = flow.error or out.strip()[-300:]
                else:
                    results["tcp_mbps"] = round(flow.mbps, 1)
                results["flows"] = ovs.ofctl("egw1", "dump-flows").splitlines()
            finally:
                net.stop()
    (report_dir / "basic.json").write_text(json.dumps(results, indent=2))
    return results
