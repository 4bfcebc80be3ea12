"""Gateway benchmark: sdn-egw vs a reactive 5-tuple app vs Ryu's simple_switch_13, one run,
same private OVS (userspace datapath), same Mininet hosts.

    sudo .venv/bin/python benchmarks/bench_gateway.py [--sessions 200] [--rates 500,1000,...]

egw runs the embedded default bundle (``classifier/models/default``) unless ``--demo-bundle``
(the tiny packet1480 bundle of ryu_apps/gateway/demo_bundle.py) or ``--bundle DIR``.

First, in-process (benchmarks/bench_packet_in.py, no switch): the bundle's held-out sessions
replayed through GatewayEngine + LiteRT: packets and ms from a session's first packet to its
rule per class, median / p99, handling cost per packet-in. Then prints, per app:
- first packet -> enforcement rule (egw only): median / p99 of the controller-side delay
  from a probe session's first packet-in to its rules being sent (REST
  ``classified_at - first_seen``; a probe session that does not fill the model's mirror
  budget is decided at the time cap, ``--egw-mirror-max-seconds``);
- RTT of a new session's first packet vs a later packet of the same session (UDP echo,
  a new source port per session, second packet 50 ms after the first);
- the new-session rate sustained before packet-ins are lost (1 UDP packet per new session,
  2 s per step; egw: mirror packet-ins counted by its metrics, reactive: 5-tuple flows
  installed; simple_switch_13 does no per-session work).
Needs root, OVS, Mininet.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mininet.topo import Topo  # noqa: E402

from topologies.controller import RyuProcess  # noqa: E402
from topologies.mininet_net import HostProcess, build_net, mininet_lock, wait_connected  # noqa: E402
from topologies.ovs_service import OvsService  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_packet_in  # noqa: E402
from bench_packet_in import pct  # noqa: E402

SW = "egwb1"

PROBE = textwrap.dedent('''
    import json, os, socket, sys, time
    mode = sys.argv[1]
    if mode == "echo":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9000))
        while True:
            d, a = s.recvfrom(2048); s.sendto(d, a)
    elif mode == "rtt":
        host, n = sys.argv[2], int(sys.argv[3])
        first, later, lost = [], [], 0
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
            s.bind(("0.0.0.0", 20000 + i))
            out = []
            for k in range(2):
                t0 = time.perf_counter(); s.sendto(os.urandom(64), (host, 9000))
                try:
                    s.recvfrom(2048); out.append((time.perf_counter() - t0) * 1e3)
                except socket.timeout:
                    out.append(None)
                time.sleep(0.05)
            s.close()
            if None in out:
                lost += 1; continue
            first.append(out[0]); later.append(out[1])
        print(json.dumps({"first": first, "later": later, "lost": lost}))
    elif mode == "blast":
        host, rate, dur, base = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        n = int(rate * dur); t0 = time.perf_counter(); payload = os.urandom(64)
        for i in range(n):
            while time.perf_counter() - t0 < i / rate:
                pass
            s.sendto(payload, (host, base + i))
        print(json.dumps({"sent": n, "secs": time.perf_counter() - t0}))
''')


class BenchTopo(Topo):
    def build(self):
        sw = self.addSwitch(SW)
        for name, ip in (("bh1", "10.79.0.1"), ("bwan", "10.79.0.100")):
            self.addLink(self.addHost(name, ip=f"{ip}/24"), sw)


def _metric(url, name, label) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    m = re.search(rf'^{name}\{{(?:dp_id="[0-9a-f]*",)?{label}\}} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def _flow_count(ovs) -> int:
    out = ovs.ofctl(SW, "dump-aggregate")
    m = re.search(r"flow_count=(\d+)", out)
    return int(m.group(1)) if m else 0


def run_app(name, apps, extra, ovs, probe, args, tmp) -> dict:
    res: dict = {"app": name}
    with RyuProcess(apps=apps, extra_args=extra, log_path=tmp / f"{name}.log") as ryu:
        net = build_net(BenchTopo(), ryu.of_port)
        try:
            net.start()
            assert wait_connected(net, timeout=20), ryu.log_tail()
            h1, wan = net.get("bh1", "bwan")
            h1.cmd("ping -c 2 -i 0.2 -W 2", wan.IP())
            echo = HostProcess(wan, [sys.executable, str(probe), "echo"])
            time.sleep(0.3)
            rtt = HostProcess(h1, [sys.executable, str(probe), "rtt", wan.IP(),
                                   str(args.sessions)])
            _, out = rtt.wait(timeout=600)
            r = json.loads(out.strip().splitlines()[-1])
            res.update(first_med=statistics.median(r["first"]), first_p99=pct(r["first"], 99),
                       later_med=statistics.median(r["later"]), later_p99=pct(r["later"], 99),
                       rtt_lost=r["lost"], rtt_n=len(r["first"]))
            if name == "egw":
                time.sleep(args.mirror_max_seconds + 0.5)  # the last ones reach the time cap
                sess = json.loads(urllib.request.urlopen(ryu.rest_url + "/egw/sessions",
                                                         timeout=10).read())
                d = [(s["classified_at"] - s["first_seen"]) * 1e3 for s in sess
                     if s["classified_at"] is not None and s["server_port"] == 9000]
                res.update(rule_med=statistics.median(d), rule_p99=pct(d, 99), rule_n=len(d))
            echo.stop()
            # New-session rate.
            best = 0
            res["rates"] = {}
            base = 10000
            for rate in args.rates:
                if name == "simple_switch_13":
                    break
                before = (_metric(ryu.rest_url, "egw_packet_ins_total", 'kind="mirror"')
                          if name == "egw" else _flow_count(ovs))
                b = HostProcess(h1, [sys.executable, str(probe), "blast", wan.IP(), str(rate),
                                     str(args.step_secs), str(base)])
                _, out = b.wait(timeout=120)
                sent = json.loads(out.strip().splitlines()[-1])["sent"]
                base += sent
                time.sleep(2.0)
                after = (_metric(ryu.rest_url, "egw_packet_ins_total", 'kind="mirror"')
                         if name == "egw" else _flow_count(ovs))
                seen = after - before
                res["rates"][rate] = round(seen / sent, 4)
                if seen / sent >= 0.99:
                    best = rate
                else:
                    break
            res["sustained_rate"] = best if name != "simple_switch_13" else None
        finally:
            net.stop()
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--rates", default="500,1000,2000,3000,4000,6000,8000")
    p.add_argument("--step-secs", type=float, default=2.0)
    p.add_argument("--apps", default="egw,reactive_5tuple,simple_switch_13")
    p.add_argument("--packet-in-rate", type=int, default=100_000,
                   help="egw's controller meter (packet-ins/s; the app's default is 1000): "
                   "set high to measure what the app itself sustains")
    p.add_argument("--max-mirroring-per-port", type=int, default=100_000,
                   help="egw's per-port cap on sessions being mirrored (app default 1024)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bundle", type=Path, help="egw's model bundle (default: the embedded one)")
    g.add_argument("--demo-bundle", action="store_true",
                   help="the tiny demo bundle (ryu_apps/gateway/demo_bundle.py)")
    p.add_argument("--mirror-max-seconds", type=float, default=3.0,
                   help="egw's mirror time cap (the app's default is 3)")
    p.add_argument("--per-class", type=int, default=20,
                   help="held-out sessions per class replayed in-process")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = p.parse_args(argv)
    args.rates = [int(x) for x in args.rates.split(",")]
    from classifier.bundle import DEFAULT_BUNDLE_DIR

    bundle = args.bundle or DEFAULT_BUNDLE_DIR
    if args.demo_bundle:
        from ryu_apps.gateway.demo_bundle import cached

        bundle = cached()
    print("in-process, held-out sessions through GatewayEngine + LiteRT:")
    replay = bench_packet_in.run(Path(bundle), args.per_class, args.data,
                                 mirror_max_seconds=args.mirror_max_seconds)
    print()
    tmp = Path(tempfile.mkdtemp(prefix="egw-bench-"))
    probe = tmp / "probe.py"
    probe.write_text(PROBE)
    apps = {
        "egw": ([str(REPO / "ryu_apps" / "egw.py")],
                ["--egw-model", str(bundle), "--egw-wan-port", f"{SW}-eth2",
                 "--egw-max-sessions", "100000", "--egw-stats-interval", "0",
                 "--egw-mirror-max-seconds", str(args.mirror_max_seconds),
                 "--egw-packet-in-rate", str(args.packet_in_rate),
                 "--egw-max-mirroring-per-port", str(args.max_mirroring_per_port),
                 # one host opens every new session here: the per-device quota, meant to
                 # stop such a host (bench_fairness.py), would cap the rate measured
                 "--egw-device-session-rate", "0"]),
        "reactive_5tuple": ([str(REPO / "benchmarks" / "apps" / "reactive_5tuple.py")], []),
        "simple_switch_13": (["ryu.app.simple_switch_13"], []),
    }
    results = []
    with OvsService() as ovs, mininet_lock():
        ovs.activate()
        for name in args.apps.split(","):
            a, extra = apps[name]
            r = run_app(name, a, extra, ovs, probe, args, tmp)
            results.append(r)
            print(json.dumps(r), flush=True)
    print()
    print(f"{'app':18} {'rule med/p99 ms':>16} {'1st RTT med/p99 ms':>19} "
          f"{'later RTT med ms':>17} {'1st/later':>9} {'sessions/s':>10}")
    for r in results:
        rule = (f"{r['rule_med']:.2f}/{r['rule_p99']:.2f}" if "rule_med" in r else "-")
        print(f"{r['app']:18} {rule:>16} {r['first_med']:>8.3f}/{r['first_p99']:<9.3f} "
              f"{r['later_med']:>17.3f} {r['first_med'] / r['later_med']:>9.2f} "
              f"{str(r['sustained_rate'] or 'n/a'):>10}")
    a = replay["all"]
    print(f"\nheld-out replay ({bundle}): first packet -> rule median {a['ms_med']:.1f} ms, "
          f"p99 {a['ms_p99']:.1f} ms, {a['packets_med']:.0f} packets median; "
          f"{a['us_per_mirror']:.1f} µs per mirrored packet-in")
    print(f"raw results and logs in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
