"""Live traffic inside Mininet hosts: iperf3 flows and the UDP latency probe.

Every process is started in a host's namespace with ``host.popen`` and stopped
by its PID (never Mininet's own iperf helper, which kills iperf machine-wide by name).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

from topologies.mininet_net import HostProcess


@dataclass
class FlowResult:
    name: str
    device: str
    kind: str
    intervals: list[tuple[float, float]] = field(default_factory=list)  # (t_end s, Mbit/s)
    mbps: float = 0.0
    error: str = ""
    extra: dict = field(default_factory=dict)


def wait_listening(host, port: int, udp: bool = False, timeout: float = 5.0) -> None:
    """Return once something in ``host``'s namespace listens on ``port``: a client started
    earlier is refused, and iperf3 3.12 with ``-J`` then exits 0 with only an error."""
    deadline = time.monotonic() + timeout
    while not host.cmd(f"ss -H{'u' if udp else 't'}ln sport = :{port}").strip():
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {'udp' if udp else 'tcp'} port {port} "
                               f"in {host.name} after {timeout:.0f} s")
        time.sleep(0.05)


def iperf3_server(host, port: int, interval: float = 0.5) -> HostProcess:
    """One-test iperf3 server printing JSON (its intervals are what was *received*),
    listening when this returns."""
    proc = HostProcess(host, ["iperf3", "-s", "-p", str(port), "-1", "-J", "-i", str(interval)])
    wait_listening(host, port)
    return proc


def iperf3_client(host, dst: str, port: int, duration: float, *, udp_kbps: int = 0,
                  streams: int = 1, interval: float = 0.5, cport: int = 0,
                  tos: int = 0) -> HostProcess:
    cmd = ["iperf3", "-c", dst, "-p", str(port), "-t", str(duration), "-J",
           "-i", str(interval), "-P", str(streams)]
    if udp_kbps:
        cmd += ["-u", "-b", f"{udp_kbps}K", "-l", "1200"]
    if cport:
        cmd += ["--cport", str(cport)]
    if tos:
        cmd += ["--tos", str(tos)]
    return HostProcess(host, cmd)


def parse_iperf3(name: str, device: str, kind: str, rc: int, out: str) -> FlowResult:
    res = FlowResult(name, device, kind)
    try:
        doc = json.loads(out[out.index("{"):])
    except (ValueError, json.JSONDecodeError):
        res.error = (out.strip() or f"iperf3 exited {rc}")[-300:]
        return res
    if "error" in doc and not doc.get("intervals"):
        res.error = doc["error"]
        return res
    ivs = [iv["sum"] for iv in doc.get("intervals", [])]
    full = max((s["seconds"] for s in ivs), default=0.0)
    for s in ivs:
        if s["seconds"] >= 0.5 * full:   # a short last interval is noise, not a rate
            res.intervals.append((round(s["end"], 3), s["bits_per_second"] / 1e6))
    end = doc.get("end", {})
    summ = end.get("sum_received") or end.get("sum") or {}
    res.mbps = summ.get("bits_per_second", 0.0) / 1e6
    if "lost_percent" in summ:
        res.extra["lost_percent"] = summ["lost_percent"]
    if "error" in doc:
        res.error = doc["error"]
    return res


def probe_server(host, port: int, duration: float) -> HostProcess:
    proc = HostProcess(host, [sys.executable, "-m", "topologies.probe", "server",
                              "--port", str(port), "--duration", str(duration)])
    wait_listening(host, port, udp=True)
    return proc


def probe_client(host, dst: str, port: int, duration: float, rate: float = 20.0,
                 sport: int = 0) -> HostProcess:
    return HostProcess(host, [sys.executable, "-m", "topologies.probe", "client", "--dst", dst,
                              "--port", str(port), "--rate", str(rate),
                              "--duration", str(duration), "--sport", str(sport)])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
