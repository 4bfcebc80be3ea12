"""Per-thread CPU of the processes behind a phase (ovs-vswitchd, ryu-manager), from /proc.

:class:`CpuSampler` reads ``/proc/PID/task/*/stat`` (utime + stime) and ``/proc/stat``
when a phase starts and when it ends; the difference over the wall time is each
thread's share of one core (100 % = one core busy), and the machine's busy share of
all its cores. Cheap (a few file reads), no tools needed; Linux only.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """tid -> (thread name, utime + stime in clock ticks) for every thread of ``pid``."""
    out: dict[int, tuple[str, int]] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        out[int(task.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


class CpuSampler:
    """``start()`` at the beginning of a phase, ``stop()`` at its end -> a plain dict."""

    def __init__(self, pids: dict[str, int], top: int = 6):
        self.pids = {k: v for k, v in pids.items() if v}
        self.top = top

    def start(self) -> "CpuSampler":
        self.t0 = time.monotonic()
        self.m0 = machine_ticks()
        self.p0 = {n: thread_ticks(p) for n, p in self.pids.items()}
        return self

    def stop(self) -> dict:
        wall = time.monotonic() - self.t0
        m1 = machine_ticks()
        busy, total = m1[0] - self.m0[0], m1[1] - self.m0[1]
        out = {"wall_s": round(wall, 2), "cores": os.cpu_count(),
               "machine_busy_percent": round(100 * busy / total, 1) if total else None,
               "loadavg_1m": round(os.getloadavg()[0], 2), "processes": {}}
        for name, pid in self.pids.items():
            after = thread_ticks(pid)
            before = self.p0.get(name, {})
            threads = []
            for tid, (tname, ticks) in after.items():
                d = ticks - before.get(tid, (tname, 0))[1]
                threads.append({"thread": tname, "tid": tid,
                                "cpu_percent": round(100 * d / TICK / wall, 1)})
            threads.sort(key=lambda t: -t["cpu_percent"])
            out["processes"][name] = {
                "cpu_percent": round(sum(t["cpu_percent"] for t in threads), 1),
                "threads": threads[:self.top]}
        return out
