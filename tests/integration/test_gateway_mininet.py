"""The real ``ryu-manager ryu_apps/egw.py`` on userspace OVS with a real (tiny) LiteRT bundle:
hosts exchange real traffic; sessions are classified; dumped flows show the DSCP /
meter / drop per session; a dropped session passes nothing after classification; a
metered class's iperf3 UDP rate stays within 15 % of the meter rate; a policy file
change updates the existing sessions' rules."""
from __future__ import annotations

import json
import re
import sys
import textwrap
import time
import urllib.request

import pytest
from mininet.topo import Topo

from topologies.controller import RyuProcess
from topologies.mininet_net import HostProcess, build_net, wait_connected
from topologies.traffic import iperf3_server

SW = "egwg1"

POLICY = """\
version: 1
default: {action: allow, dscp: 0}
classes:
  voip: {dscp: EF, idle_timeout: 30}
  streaming: {dscp: AF41, rate_limit: {kbps: 5000, burst_kb: 500, scope: class}}
  p2p: {action: drop, idle_timeout: 30}
  web: {dscp: CS0}
wan:
  uplink_kbps: 100000
  default_class: besteffort
  classes:
    - {name: realtime, dscp: [EF], rate_kbps: 10000, prio: 0}
    - {name: besteffort, dscp: [CS0, AF41, CS4], rate_kbps: 90000, prio: 3}
"""

TOOL = textwrap.dedent('''
    import json, os, socket, sys, time
    mode = sys.argv[1]
    if mode == "udp_recv":
        port, dur = int(sys.argv[2]), float(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port)); s.settimeout(0.2)
        seqs = []; end = time.time() + dur
        while time.time() < end:
            try:
                d, _ = s.recvfrom(4096)
                seqs.append(int.from_bytes(d[-4:], "big"))
            except socket.timeout:
                pass
        print(json.dumps(seqs))
    elif mode == "udp_send":
        host, port, prefix, n = sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4]), int(sys.argv[5])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 41000))
        for i in range(n):
            s.sendto(prefix + os.urandom(40) + i.to_bytes(4, "big"), (host, port))
            time.sleep(0.6 if i == 0 else 0.02)
    elif mode == "tcp_echo":
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", int(sys.argv[2]))); srv.listen(1)
        c, _ = srv.accept()
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(d)
    elif mode == "tcp_client":
        host, port, prefix, n = sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4]), int(sys.argv[5])
        c = socket.create_connection((host, port), timeout=5)
        got = 0
        for i in range(n):
            msg = prefix + os.urandom(40)
            c.sendall(msg)
            got += len(c.recv(4096))
            time.sleep(0.2)
        print(json.dumps({"echoed": got}))
''')


class GatewayTopo(Topo):
    def build(self):
        sw = self.addSwitch(SW)
        for name, ip in (("gh1", "10.78.0.1"), ("gh2", "10.78.0.2"), ("gwan", "10.78.0.100")):
            self.addLink(self.addHost(name, ip=f"{ip}/24"), sw)


@pytest.fixture(scope="module")
def demo_bundle():
    from ryu_apps.gateway.demo_bundle import cached

    return cached()


TOKEN = "egw-test-token"


def _get(url):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _session_flows(flows: str, port: int) -> list[str]:
    return [line for line in flows.splitlines()
            if "priority=100" in line and (f"tp_src={port}" in line or f"tp_dst={port}" in line)]


@pytest.mark.timeout(150)
def test_gateway_classifies_and_enforces(ovs, mininet_slot, tmp_path, demo_bundle):
    from ryu_apps.gateway.demo_bundle import PREFIX

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    tool = tmp_path / "tool.py"
    tool.write_text(TOOL)
    py = sys.executable
    args = ["--egw-model", str(demo_bundle),
            "--egw-policy", str(policy), "--egw-wan-port", f"{SW}-eth3",
            "--egw-policy-watch", "0.5"]
    with RyuProcess(extra_args=args, token=TOKEN, log_path=tmp_path / "ryu.log") as ryu:
        net = build_net(GatewayTopo(), ryu.of_port)
        try:
            net.start()
            assert wait_connected(net, timeout=20), ryu.log_tail()
            h1, h2, wan = net.get("gh1", "gh2", "gwan")
            out = h1.cmd("ping -c 2 -i 0.2 -W 2", wan.IP())   # learn MACs (ICMP: no session)
            assert " 0% packet loss" in out, out + ryu.log_tail()

            # voip over TCP: classified, EF both ways, the echo keeps working.
            srv = HostProcess(wan, [py, str(tool), "tcp_echo", "7000"])
            time.sleep(0.3)
            cli = HostProcess(h1, [py, str(tool), "tcp_client", wan.IP(), "7000",
                                   PREFIX["voip"].hex(), "5"])
            rc, cout = cli.wait(timeout=20)
            srv.stop()
            assert rc == 0 and json.loads(cout)["echoed"] > 0, cout

            # p2p over UDP: the first datagram passes (forwarded while mirrored), then
            # the drop rule blocks every later one.
            recv = HostProcess(wan, [py, str(tool), "udp_recv", "6881", "2.5"])
            time.sleep(0.3)
            send = HostProcess(h2, [py, str(tool), "udp_send", wan.IP(), "6881",
                                    PREFIX["p2p"].hex(), "21"])
            send.wait(timeout=20)
            rc, rout = recv.wait(timeout=20)
            seqs = json.loads(rout)
            assert seqs == [0], f"dropped session passed {seqs}\n" + ryu.log_tail()

            # streaming (iperf3 UDP): metered at 5000 kbit/s.
            iperf_srv = iperf3_server(wan, 5202)
            client = HostProcess(h1, ["iperf3", "-c", wan.IP(), "-p", "5202", "-u", "-b", "20M",
                                      "-l", "1200", "-t", "4", "-J"])
            rc, cout = client.wait(timeout=40)
            assert rc == 0, cout
            _, sout = iperf_srv.wait(timeout=20)
            (tmp_path / "iperf_client.json").write_text(cout)
            (tmp_path / "iperf_server.json").write_text(sout)
            recv_bps = _udp_received_bps(json.loads(cout), json.loads(sout))
            assert abs(recv_bps - 5e6) / 5e6 <= 0.15, (
                f"metered class got {recv_bps / 1e6:.2f} Mbit/s, meter is 5 Mbit/s")

            flows = ovs.ofctl(SW, "dump-flows")
            voip = _session_flows(flows, 7000)
            p2p = _session_flows(flows, 6881)
            assert len(voip) == 2 and all("set_field:46->ip_dscp" in f for f in voip), flows
            assert len(p2p) == 2 and all("actions=drop" in f for f in p2p), flows
            assert any("n_packets=0" not in f for f in p2p), flows
            stream = [f for f in flows.splitlines() if "priority=100" in f and "udp" in f
                      and "meter:" in f]
            assert len(stream) == 2 and all("set_field:34->ip_dscp" in f for f in stream), flows
            meters = ovs.ofctl(SW, "dump-meters")
            assert "rate=5000" in meters, meters
            tc = wan.cmd("true") or ""
            import subprocess
            qd = subprocess.run(["tc", "qdisc", "show", "dev", f"{SW}-eth3"],
                                capture_output=True, text=True).stdout
            assert "htb" in qd, qd

            # REST: every session with its class, confidence and action.
            sessions = _get(f"{ryu.rest_url}/egw/sessions?limit=1000")["sessions"]
            by_class = {}
            for s in sessions:
                by_class.setdefault(s["class"], []).append(s)
            assert {"voip", "p2p", "streaming"} <= set(by_class), sessions
            assert by_class["p2p"][0]["action"] == "drop"
            assert by_class["voip"][0]["dscp"] == 46 and by_class["voip"][0]["confidence"] > 0.5
            stats = _get(f"{ryu.rest_url}/egw/stats")
            assert list(stats.values())[0]["classes"]["streaming"]["sessions"] >= 1

            # Live reload on file change: existing sessions get the new DSCP.
            policy.write_text(POLICY.replace("voip: {dscp: EF", "voip: {dscp: CS4"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                voip = _session_flows(ovs.ofctl(SW, "dump-flows"), 7000)
                if voip and all("set_field:32->ip_dscp" in f for f in voip):
                    break
                time.sleep(0.3)
            else:
                raise AssertionError("policy change not applied:\n" + "\n".join(voip)
                                     + ryu.log_tail())
            # A bad file is rejected and the running policy kept.
            policy.write_text("version: 1\nclasses: [\n")
            time.sleep(1.5)
            assert _get(f"{ryu.rest_url}/egw/policy")["last_error"]
            metrics = urllib.request.urlopen(f"{ryu.rest_url}/metrics", timeout=5).read().decode()
            assert re.search(r'egw_sessions_classified_total\{cls="p2p",dp_id="[0-9a-f]{16}"\} [1-9]',
                             metrics)
            assert 'egw_policy_reloads_total{dp_id="",result="rejected"}' in metrics
        finally:
            net.stop()
    log = ryu.log_tail(400)
    assert "Traceback" not in log, log
    assert '"class": "voip"' in log and "decision" in log


def _udp_received_bps(client: dict, server: dict) -> float:
    """What the receiver got: the server's own measure, else the client's view of it."""
    for doc in (server, client):
        end = doc.get("end", {})
        for key in ("sum_received", "sum"):
            s = end.get(key)
            if s and s.get("bits_per_second"):
                if doc is client and key == "sum" and "lost_percent" in s:
                    return s["bits_per_second"] * (1 - s["lost_percent"] / 100)
                return s["bits_per_second"]
    return 0.0
