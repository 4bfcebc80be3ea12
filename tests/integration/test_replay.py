"""The replayer sends recorded sessions both ways through the real gateway and counts arrivals."""
from __future__ import annotations

import pytest

from tests.unit.pcap_factory import tcp_session, udp_session, write_capture
from topologies.controller import RyuProcess
from topologies.mininet_net import build_net, wait_connected
from topologies.replay import Replayer, load_sessions, rewrite
from topologies.smart_home import DEVICES, INET_IPS, INET_MAC, SmartHomeTopo


@pytest.mark.timeout(120)
def test_replayed_sessions_cross_the_gateway_both_ways(ovs, mininet_slot, tmp_path):
    data = tmp_path / "caps"
    (data / "web").mkdir(parents=True)
    (data / "voice").mkdir()
    write_capture(data / "web" / "a.pcap",
                  tcp_session([(0, b"\x16\x03\x01" + bytes(200)), (1, b"\x16\x03\x03" + bytes(900)),
                               (0, b"\x17\x03\x03" + bytes(60))]))
    write_capture(data / "voice" / "b.pcap",
                  udp_session([(0, b"\x80\x00" + bytes(160)), (1, b"\x80\x00" + bytes(160)),
                               (0, b"\x80\x01" + bytes(160))], dport=3478))
    chosen = load_sessions(data, ["web", "voice"], per_class=5)
    assert {k: len(v) for k, v in chosen.items()} == {"web": 1, "voice": 1}

    devs = {d.name: d for d in DEVICES}
    laptop = devs["laptop"]
    sessions = []
    for i, cs in enumerate([*chosen["web"], *chosen["voice"]]):
        sessions.append(rewrite(cs, i, "laptop", laptop.ip, laptop.mac, INET_IPS["cloud"],
                                INET_MAC, 30000 + i))
    # Replayed TCP data segments keep payloads and order; bare ACK/SYN/FIN frames too.
    assert [d for d, _, _ in sessions[0].frames].count(1) >= 2

    with RyuProcess(log_path=tmp_path / "ryu.log") as ryu:
        net = build_net(SmartHomeTopo(devices=(laptop,)), ryu.of_port)
        try:
            net.start()
            assert wait_connected(net, 20)
            hosts = {n: (net.get(n).pid, net.get(n).defaultIntf().name)
                     for n in ("laptop", "inet")}
            rp = Replayer(hosts, server_host="inet")
            try:
                rp.replay(sessions, gap=0.01)
            finally:
                rp.close()
        finally:
            net.stop()
    for s in sessions:
        assert s.sent == [sum(1 for d, _, _ in s.frames if d == 0),
                          sum(1 for d, _, _ in s.frames if d == 1)]
        assert s.received == s.sent, (s.label, s.sent, s.received, ryu.log_tail())
