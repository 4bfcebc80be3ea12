"""Several homes, one controller: each gateway forwards its own home only."""
from __future__ import annotations

import pytest

from topologies.controller import RyuProcess
from topologies.mininet_net import build_net, wait_connected
from topologies.smart_home import DEVICES, MultiHomeTopo


@pytest.mark.timeout(120)
def test_one_controller_serves_three_homes(ovs, mininet_slot, tmp_path):
    with RyuProcess(log_path=tmp_path / "ryu.log") as ryu:
        net = build_net(MultiHomeTopo(homes=3, devices=DEVICES[:2]), ryu.of_port)
        try:
            net.start()
            assert wait_connected(net, 30), ryu.log_tail()
            for i in (1, 2, 3):
                inet, dev = net.get(f"h{i}inet", f"h{i}{DEVICES[0].name}")
                out = dev.cmd("ping -c 2 -i 0.2 -W 2", inet.IP())
                assert " 0% packet loss" in out, (i, out)
            # Homes are separate islands: home 1 cannot reach home 2.
            out = net.get("h1bpm").cmd("ping -c 1 -W 1", net.get("h2inet").IP())
            assert " 0% packet loss" not in out
        finally:
            net.stop()
    log = ryu.log_tail(400)
    assert log.count("connected") >= 3 or "switch" in log
    assert "Traceback" not in log
