"""Packet-in flood: one host opens thousands of new UDP sessions per second (spoofed
source ports) while a real-time device measures its latency through the gateway.

    sudo .venv/bin/python benchmarks/bench_flood.py [--rate 5000] [--seconds 5]
         [--packet-in-rate 1000] [--compare]

Prints (JSON and a table): new sessions offered per second vs packet-ins that reached
the app (its ``egw_packet_ins_total``), packets the switch's controller meter dropped,
session table size (and its bound), ryu-manager RSS before / after / 5 s after, the
real-time probe's RTT p50 / p95 / loss idle vs during the flood. ``--compare`` also
runs with the packet-in meter off (``--egw-packet-in-rate 0``).

:func:`run_flood` is used by tests/integration/test_robust_mininet.py.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mininet.topo import Topo  # noqa: E402

from topologies.controller import RyuProcess  # noqa: E402
from topologies.mininet_net import HostProcess, build_net, wait_connected  # noqa: E402
from topologies.netns import packet_socket  # noqa: E402



def topo(sw: str):
    class FloodTopo(Topo):
        def build(self):
            s = self.addSwitch(sw)
            for name, ip in (("fl1", "10.81.0.1"), ("rt1", "10.81.0.2"),
                             ("fwan", "10.81.0.100")):
                self.addLink(self.addHost(name, ip=f"{ip}/24"), s)
    return FloodTopo()


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def _ip(text: str) -> bytes:
    return socket.inet_aton(text)


def flood_frames(src_mac, dst_mac, src_ip, dst_ip, n: int, dport: int = 9999) -> list[bytes]:
    """n UDP frames, each a new session (source ports 1024.. wrapping), 18-byte payload."""
    out = []
    for i in range(n):
        sport = 1024 + i % 64000
        payload = struct.pack("!I", i) + b"flood-payload-"
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         _ip(src_ip), _ip(dst_ip))
        ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
        out.append(_mac(dst_mac) + _mac(src_mac) + b"\x08\x00" + ip + udp)
    return out


def _csum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def send_flood(sock, frames: list[bytes], rate: float, seconds: float) -> tuple[int, float]:
    """Send frames at ``rate`` per second for at most ``seconds`` (bounded count and time)."""
    n = min(len(frames), int(rate * seconds))
    t0 = time.monotonic()
    sent = 0
    for i in range(n):
        target = t0 + i / rate
        now = time.monotonic()
        if now < target:
            time.sleep(target - now)
        elif now - t0 > seconds + 1:
            break
        try:
            sock.send(frames[i])
            sent += 1
        except OSError:
            pass
    return sent, time.monotonic() - t0


class Flood:
    """``fl``'s flood, started at once: ``rate * seconds`` new sessions to ``wan`` at
    ``rate``/s from a raw socket in its namespace, sent from a thread of its own."""

    def __init__(self, fl, wan, rate: float, seconds: float, dport: int = 9999):
        self.rate, self.seconds = rate, seconds
        self._frames = flood_frames(fl.MAC(), wan.MAC(), fl.IP(), wan.IP(), int(rate * seconds),
                                    dport=dport)
        self._sock = packet_socket(fl.pid, fl.defaultIntf().name)
        self.sent, self.elapsed = 0, None
        self._th = threading.Thread(target=self._send)
        self._th.start()

    def _send(self):
        self.sent, self.elapsed = send_flood(self._sock, self._frames, self.rate, self.seconds)

    def join(self) -> None:
        self._th.join(timeout=self.seconds + 10)
        self._sock.close()

    @property
    def wall(self) -> float:
        """Seconds the sending took (1 when it did not finish)."""
        return max(self.elapsed if self.elapsed is not None else 1, 1e-6)

    @property
    def achieved_rate(self) -> int:
        return round(self.sent / self.wall)


def packet_in_deltas(m0: str, m1: str, kinds) -> dict[str, float]:
    """``egw_packet_ins_total`` per kind between two /metrics pages."""
    return {k: metric(m1, "egw_packet_ins_total", f'kind="{k}"')
            - metric(m0, "egw_packet_ins_total", f'kind="{k}"') for k in kinds}


def controller_meter_drops(ovs, sw: str) -> tuple[str, int | None]:
    """(``ovs-ofctl meter-stats`` text, packets the controller meter's band dropped)."""
    text = ovs.ofctl(sw, "meter-stats")
    m = re.search(r"meter:controller .*?\n\s*0: packet_count:(\d+)", text)
    return text, int(m.group(1)) if m else None


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def metric(text: str, name: str, labels: str = "") -> float:
    total = 0.0
    pat = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", re.M)
    for m in pat.finditer(text):
        if labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total


_TOKEN = "egw-bench-token"


def _get(url: str, raw: bool = False):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {_TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        data = r.read()
    return data.decode() if raw else json.loads(data)


def _pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def probe(rt, wan_ip: str, seconds: float, rate: int = 50) -> dict:
    cli = HostProcess(rt, [sys.executable, "-m", "topologies.probe", "client", "--dst", wan_ip,
                           "--port", "9000", "--rate", str(rate), "--duration", str(seconds),
                           "--sport", "9001"])
    rc, out = cli.wait(timeout=seconds + 20)
    d = json.loads(out[out.index("{"):])
    rtts = d["rtt_ms"]
    return {"sent": d["sent"], "received": d["received"],
            "loss": 1 - d["received"] / max(1, d["sent"]),
            "p50_ms": round(_pct(rtts, 50), 3), "p95_ms": round(_pct(rtts, 95), 3),
            "max_ms": round(max(rtts), 3) if rtts else float("nan")}


@contextlib.contextmanager
def flood_home(sw: str, args: list[str], workdir: Path):
    """ryu-manager with ``args`` and the flood topology on switch ``sw``, started, the
    switch connected and both LAN hosts reaching the WAN host: yields (ryu, fl1, rt1, fwan);
    stops what it started."""
    ryu = RyuProcess(extra_args=args, token=_TOKEN, log_path=workdir / f"ryu-{sw}.log").start()
    try:
        net = build_net(topo(sw), ryu.of_port)
    except BaseException:
        ryu.stop()   # nothing else was started yet
        raise
    try:
        net.start()
        if not wait_connected(net, timeout=20):
            raise RuntimeError("switch did not connect\n" + ryu.log_tail())
        fl, rt, wan = net.get("fl1", "rt1", "fwan")
        for h in (fl, rt):
            out = h.cmd("ping -c 2 -i 0.2 -W 2", wan.IP())
            if " 0% packet loss" not in out:
                raise RuntimeError(out + ryu.log_tail())
        yield ryu, fl, rt, wan
    finally:
        net.stop()
        ryu.stop()


def run_flood(ovs, sw: str, *, rate: float = 5000, seconds: float = 5.0,
              packet_in_rate: int = 1000, max_sessions: int = 10000,
              per_port: int = 1024, workdir: str | None = None, model: str | None = None,
              extra_args: list[str] | None = None) -> dict:
    """One run: idle probe, then probe during the flood; returns the figures."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="egw-flood-"))
    args = ["--noegw-wan-htb", "--egw-wan-port", f"{sw}-eth3",
            "--egw-packet-in-rate", str(packet_in_rate), "--egw-max-sessions", str(max_sessions),
            "--egw-max-mirroring-per-port", str(per_port), "--egw-stats-interval", "0",
            *(["--egw-model", model] if model else []), *(extra_args or [])]
    res: dict = {"offered_rate": rate, "seconds": seconds, "packet_in_rate": packet_in_rate,
                 "max_sessions": max_sessions, "per_port": per_port}
    with flood_home(sw, args, workdir) as (ryu, fl, rt, wan):
        srv = HostProcess(wan, [sys.executable, "-m", "topologies.probe", "server",
                                "--port", "9000", "--duration", str(seconds * 3 + 30)])
        time.sleep(0.5)
        res["idle"] = probe(rt, wan.IP(), 3.0)
        url = ryu.rest_url
        m0 = _get(f"{url}/metrics", raw=True)
        res["rss_kb_before"] = rss_kb(ryu.proc.pid)
        flood = Flood(fl, wan, rate, seconds)
        time.sleep(0.5)
        res["flood"] = probe(rt, wan.IP(), max(1.0, seconds - 1.0))
        flood.join()
        m1 = _get(f"{url}/metrics", raw=True)
        stats = _get(f"{url}/egw/stats")
        st = list(stats.values())[0]
        res["rss_kb_after"] = rss_kb(ryu.proc.pid)
        res["sent"], res["achieved_rate"] = flood.sent, flood.achieved_rate
        pin = packet_in_deltas(m0, m1, ("mirror", "forward", "duplicate", "ignored", "shed"))
        res["packet_ins"] = {k: int(v) for k, v in pin.items()}
        res["packet_ins_per_s"] = round(sum(pin.values()) / flood.wall)
        res["sessions_active_end"] = st["sessions_active"]
        res["sessions_evicted"] = st["sessions_evicted"]
        res["meter_stats"], res["controller_meter_dropped"] = controller_meter_drops(ovs, sw)
        res["meters"] = ovs.ofctl(sw, "dump-meters")
        time.sleep(5)
        res["rss_kb_after_5s"] = rss_kb(ryu.proc.pid)
        res["sessions_active_5s"] = list(_get(f"{url}/egw/stats").values())[0]["sessions_active"]
        srv.stop()
        res["log_tail"] = ryu.log_tail(200)      # before the stop (SIGINT prints a trace)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=5000, help="new sessions/s offered")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--packet-in-rate", type=int, default=1000)
    p.add_argument("--max-sessions", type=int, default=10000)
    p.add_argument("--per-port", type=int, default=1024)
    p.add_argument("--compare", action="store_true", help="also run without the packet-in meter")
    p.add_argument("--device-session-rate", type=float, default=0,
                   help="the per-device quota (default 0: off, to measure the meter and "
                        "table bounds alone; benchmarks/bench_fairness.py measures the quota)")
    a = p.parse_args(argv)
    from topologies.mininet_net import mininet_lock
    from topologies.ovs_service import OvsService
    from ryu_apps.gateway.demo_bundle import cached

    model = str(cached())
    runs = [("meter", a.packet_in_rate)] + ([("no meter", 0)] if a.compare else [])
    rows = []
    with OvsService() as ovs, mininet_lock():
        ovs.activate()
        for i, (name, pir) in enumerate(runs):
            r = run_flood(ovs, f"egwf{i + 1}", rate=a.rate, seconds=a.seconds,
                          packet_in_rate=pir, max_sessions=a.max_sessions, per_port=a.per_port,
                          model=model, extra_args=["--egw-device-session-rate",
                                                   str(a.device_session_rate)])
            r.pop("log_tail")
            r.pop("meter_stats")
            r.pop("meters")
            r["run"] = name
            rows.append(r)
            print(json.dumps(r, indent=1))
    print()
    print("| run | offered new sessions/s (achieved) | packet-ins/s at the app | meter dropped "
          "| sessions (end / +5 s) | RSS MB before / after / +5 s | probe p50/p95 ms idle "
          "| probe p50/p95 ms flood (loss) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['offered_rate']:.0f} ({r['achieved_rate']}) | "
              f"{r['packet_ins_per_s']} | {r['controller_meter_dropped']} | "
              f"{r['sessions_active_end']} / {r['sessions_active_5s']} | "
              f"{r['rss_kb_before'] / 1024:.1f} / {r['rss_kb_after'] / 1024:.1f} / "
              f"{r['rss_kb_after_5s'] / 1024:.1f} | "
              f"{r['idle']['p50_ms']}/{r['idle']['p95_ms']} | "
              f"{r['flood']['p50_ms']}/{r['flood']['p95_ms']} ({r['flood']['loss']:.1%}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
