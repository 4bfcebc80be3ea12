"""The fleet dashboard on real emulation data: two homes, one controller each, one real
Prometheus; traffic in waves; then the Grafana dashboard's queries (deploy/grafana/egw.json)
as Prometheus range queries, drawn with matplotlib (no Grafana runs here).

Writes docs/img/fleet_dashboard.png and docs/results/fleet.json: the plotted series, what
each gateway exports (series and samples per scrape, from Prometheus), and the policy
reload round trip through the REST API. Needs root, Open vSwitch and Mininet (as the
integration tests); takes the machine-wide Mininet lock.

    sudo .venv/bin/python benchmarks/fleet_dashboard.py          # about 2 minutes
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DASHBOARD = REPO / "deploy" / "grafana" / "egw.json"
PNG = REPO / "docs" / "img" / "fleet_dashboard.png"
OUT = REPO / "docs" / "results" / "fleet.json"
#: the dashboard panels drawn (by title), 2 x 2
PANELS = ("Sessions classified per second, by class",
          "Session table: active sessions and bound",
          "Packet-ins per second, by kind",
          "Packet-ins dropped: controller meter (switch) and shed (gateway)")
# home 2 as in tests/integration/test_fleet_prometheus.py: tight bounds, to show drops
HOME2 = ["--egw-max-mirroring-per-port", "1", "--egw-packet-in-rate", "20",
         "--egw-packet-in-burst", "10"]
# a small session table, so that the table-and-bound panel shows the bound being reached
FAST = ["--egw-stats-interval", "1", "--egw-max-sessions", "24"]


def dashboard_queries(window: str) -> dict[str, list[tuple[str, str]]]:
    """``{panel title: [(expr, legend), ...]}`` with every home selected and rate windows
    of ``window`` (the run is minutes long, the dashboard's windows are for hours)."""
    dash = json.loads(DASHBOARD.read_text())
    out = {}
    for p in dash["panels"]:
        out[p["title"]] = [(t["expr"].replace("$home", ".*").replace("[1m]", f"[{window}]"),
                            t["legendFormat"]) for t in p["targets"]]
    return out


def _legend(fmt: str, metric: dict) -> str:
    for k, v in metric.items():
        fmt = fmt.replace("{{" + k + "}}", v)
    return fmt


def run(waves: int, pause: float, window: str) -> dict:
    from topologies.builtin_captures import builtin_sessions
    from topologies.fleet import Fleet
    from topologies.mininet_net import mininet_lock
    from topologies.ovs_service import OvsService

    with tempfile.TemporaryDirectory(prefix="egw-fleet-") as tmp, OvsService() as ovs, \
            mininet_lock():
        ovs.activate()
        with Fleet(tmp, homes=2, extra_args={1: FAST, 2: FAST + HOME2}) as fleet:
            t0 = time.time()
            for w in range(waves):
                port = 30000 + 100 * w          # new client ports: new sessions each wave
                fleet.replay(1, builtin_sessions(["streaming", "voip", "chat"], per_class=2, seed=w),
                             first_port=port)
                fleet.replay(2, builtin_sessions(["p2p", "email"], per_class=3, seed=100 + w),
                             first_port=port)
                print(f"wave {w + 1}/{waves} replayed", flush=True)
                time.sleep(pause)
            reload_ms = {}
            for i in (1, 2):
                c = fleet.client(i)
                secs = []
                for _ in range(5):
                    t = time.perf_counter()
                    c.reload_policy()
                    secs.append(time.perf_counter() - t)
                reload_ms[f"home{i}"] = round(1000 * statistics.median(secs), 1)
            time.sleep(3)                        # one more scrape after the last reload
            t1 = time.time()
            prom = fleet.prom
            per_target = {r["metric"]["home"]: {"samples": int(float(r["value"][1]))}
                          for r in prom.query('scrape_samples_scraped{job="egw"}')}
            for r in prom.query('count by (home) ({job="egw", __name__=~"egw_.*"})'):
                per_target[r["metric"]["home"]]["egw_series"] = int(float(r["value"][1]))
            step = 2.0
            panels = {}
            for title in PANELS:
                series = []
                for expr, legend in dashboard_queries(window)[title]:
                    for r in prom.query_range(expr, t0, t1, step):
                        series.append({"label": _legend(legend, r["metric"]),
                                       "t": [round(float(ts) - t0, 1) for ts, _ in r["values"]],
                                       "v": [round(float(v), 3) for _, v in r["values"]]})
                panels[title] = {"queries": [e for e, _ in dashboard_queries(window)[title]],
                                 "series": series}
            rest = {f"home{i}": next(iter(fleet.client(i).stats().values())) for i in (1, 2)}
    return {"waves": waves, "seconds": round(t1 - t0, 1), "step_seconds": step,
            "rate_window": window, "scrape_interval": "1s", "per_gateway": per_target,
            "policy_reload_ms_median": reload_ms,
            "rest_at_end": {h: {"sessions_active": s["sessions_active"],
                                "classified": s["counters"].get("classified", 0),
                                "shed": s["counters"].get("shed", 0),
                                "packet_in_meter_dropped": s["counters"].get("packet_in_meter_dropped", 0)}
                            for h, s in rest.items()},
            "home_flags": {"home1": FAST, "home2": FAST + HOME2},
            "panels": panels}


def plot(res: dict, path: Path = PNG) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for ax, title in zip(axes.flat, PANELS):
        for s in res["panels"][title]["series"]:
            ax.plot(s["t"], s["v"], label=s["label"], lw=1.4)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if res["panels"][title]["series"]:
            ax.legend(fontsize=7, ncol=2)
    for ax in axes[1]:
        ax.set_xlabel("seconds since the first wave")
    fig.suptitle(f"sdn-egw fleet (2 homes, 1 controller each), Prometheus range queries of "
                 f"deploy/grafana/egw.json, rate window {res['rate_window']}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--waves", type=int, default=6)
    ap.add_argument("--pause", type=float, default=8.0, help="seconds between waves")
    ap.add_argument("--window", default="10s", help="rate window of the plotted queries")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    a = ap.parse_args(argv)
    if a.plot_only:
        res = json.loads(OUT.read_text())
    else:
        res = run(a.waves, a.pause, a.window)
        OUT.write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {OUT.relative_to(REPO)}")
    plot(res)
    print(f"wrote {PNG.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
