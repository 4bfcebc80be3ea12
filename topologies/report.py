"""The emulation report: Markdown tables and PNG plots from measured results."""
from __future__ import annotations

import math
from pathlib import Path


def _plots(report_dir: Path, results: dict, pol, base, idle=None) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    runs = [r for r in (pol, base) if r is not None]
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 3.2 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs):
        for f in run.flows:
            if f.intervals:
                ax.plot([t for t, _ in f.intervals], [v for _, v in f.intervals], label=f.name)
        if not math.isnan(run.policy_change_at):
            ax.axvline(run.policy_change_at, color="k", ls="--", lw=0.8, label="policy reload")
        ax.set_title(f"{run.name} run: throughput per flow (0.5 s intervals)")
        ax.set_xlabel("s")
        ax.set_ylabel("Mbit/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(report_dir / "throughput.png", dpi=110)
    plt.close(fig)
    files["throughput"] = "throughput.png"

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in ([idle] if idle is not None and "idle" in results else []) + runs:
        xs = sorted(r for t, r in zip(run.probe_t, run.probe_rtt_ms) if t > 3.0)
        if xs:
            ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))],
                    label=f"{run.name} (p95 {results[run.name]['probe_p95_ms']} ms)")
    ax.set_xscale("log")
    ax.set_xlabel("probe RTT (ms, log)")
    ax.set_ylabel("CDF")
    ax.set_title("Blood-pressure monitor probe: idle, and under a saturated uplink")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(report_dir / "latency_cdf.png", dpi=110)
    plt.close(fig)
    files["latency"] = "latency_cdf.png"

    table = (results.get("replay") or {}).get("classification")
    if table and table["matrix"]:
        trues = list(table["matrix"])
        preds = table["labels"]
        fig, ax = plt.subplots(figsize=(1 + 0.8 * len(preds), 1 + 0.6 * len(trues)))
        data = [[table["matrix"][t][p] for p in preds] for t in trues]
        ax.imshow(data, cmap="Blues")
        ax.set_xticks(range(len(preds)), preds, rotation=45, ha="right")
        ax.set_yticks(range(len(trues)), trues)
        for i, row in enumerate(data):
            for j, v in enumerate(row):
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=9)
        ax.set_xlabel("gateway's label")
        ax.set_ylabel("true class")
        ax.set_title("Replayed sessions")
        fig.tight_layout()
        fig.savefig(report_dir / "confusion.png", dpi=110)
        plt.close(fig)
        files["confusion"] = "confusion.png"

    replayed, live = ood_scores(results)
    if replayed or live:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        top = max(replayed + live)
        bins = [top * i / 30 for i in range(31)]
        ax.hist(replayed, bins=bins, alpha=0.6, label=f"replayed held-out sessions ({len(replayed)})")
        ax.hist(live, bins=bins, alpha=0.6, label=f"live flows ({len(live)})")
        thr = (results["model"].get("ood") or {}).get("threshold")
        if thr is not None:
            ax.axvline(thr, color="k", ls="--", lw=0.8, label=f"threshold {thr:.3f}: above = unknown")
        ax.set_xlabel("OOD score (higher = less like the training sessions)")
        ax.set_ylabel("sessions")
        ax.set_title("The model's out-of-distribution score")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(report_dir / "ood_scores.png", dpi=110)
        plt.close(fig)
        files["ood"] = "ood_scores.png"
    return files


def ood_scores(results: dict) -> tuple[list[float], list[float]]:
    """OOD scores of the replayed sessions and of the live flows (those that have one)."""
    table = (results.get("replay") or {}).get("classification") or {}
    replayed = [r["ood_score"] for r in table.get("rows", []) if r.get("ood_score") is not None]
    live = [f["ood_score"] for f in results.get("live_flows") or []
            if f.get("ood_score") is not None]
    return replayed, live


def time_to_decision_lines(results: dict) -> list[str]:
    ttd = results.get("time_to_decision")
    if not ttd or not ttd.get("rows"):
        return []
    L = ["## Time to decision per class", "",
         "Replayed sessions, from the first packet the gateway saw to its decision "
         "(REST `classified_at - first_seen`) and the packet-ins it mirrored until then. "
         "*Filled*: sessions whose model budget filled; the others were decided at the mirror "
         "cap with what they had.", "",
         "| class | sessions | filled | ms median | ms p95 | ms max | packets median | packets max |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ttd["rows"]:
        L.append(f"| {r['class']} | {r['sessions']} | {r['filled']} | {r['median_ms']} | "
                 f"{r['p95_ms']} | {r['max_ms']} | {r['median_packets']} | {r['max_packets']} |")
    live = [f for f in results.get("live_flows") or [] if f.get("decision_ms") is not None]
    if live:
        L += ["", "Live flows: " + "; ".join(
            f"{f['flow']} ({f['proto']}) {f['decision_ms']} ms, {f['mirrored_packets']} packets"
            for f in sorted(live, key=lambda f: (f["flow"], f["client"]))) + "."]
    return L + [""]


def devices_lines(results: dict) -> list[str]:
    """The devices run: each replayed device as the gateway identified it, and the unknown
    device's quarantine."""
    dev = results.get("devices")
    if not dev:
        return []
    return ["## Devices identified live", "",
            f"A third run after the QoS runs (its own gateway, with the device model, and "
            f"network; {dev.get('wall_s')} s): each device replays the setup capture of "
            f"{dev['source']} from its own MAC; `GET /egw/devices` then says what the gateway "
            f"made of it (decided after {dev.get('max_seconds')} s at the latest).", "",
            *devices_table(dev), ""]


def devices_table(dev: dict) -> list[str]:
    """The devices run's table and its quarantine sentence (the report, docs/smart_home.md)."""
    L = ["| host | MAC | capture | true type | identified as | kind | confidence | "
         "packets needed | reason |", "|---|---|---|---|---|---|---:|---:|---|"]
    for r in dev.get("devices", []):
        conf = "" if r.get("confidence") is None else f"{r['confidence']:.2f}"
        L.append(f"| {r['host']} | {r['mac']} | {r['capture']} | {r['true_type'] or ''} | "
                 f"{r.get('type') or r.get('state')} | {r.get('kind') or ''} | {conf} | "
                 f"{r.get('packets_needed') or ''} | {r.get('reason') or ''} |")
    q = dev.get("quarantine")
    if q:
        yes = {True: "yes", False: "no"}
        L += ["", f"Quarantine: a new device ({q['mac']}, `unknown_device` under the policy's "
              f"`device_types`) was held: {yes.get(q['quarantined'])}. Its DNS query reached "
              f"the WAN: {yes.get(q['dns_reached_wan'])}; its TCP SYN to port 443: "
              f"{yes.get(q['tcp443_reached_wan_before_approval'])} before "
              f"`POST /egw/devices/{{mac}}/approve`, "
              f"{yes.get(q['tcp443_reached_wan_after_approval'])} after."]
        named = q.get("dns_named")
        if named:
            opened = ", ".join(f"{h['name']} -> {h['address']} (idle timeout {h['idle_timeout']} s)"
                               for h in q.get("opened_hosts", []))
            L += ["", "Hosts named in DNS answers (while held): before asking, "
                  + ", ".join(f"{a}: {yes.get(v)}" for a, v in named["before"].items())
                  + f"; the answer opened {opened or 'nothing'}; then "
                  + ", ".join(f"{a}: {yes.get(v)}" for a, v in named["named"].items())
                  + "; a host no answer named: "
                  + ", ".join(f"{a}: {yes.get(v)}" for a, v in named["after"].items())
                  + f"; after approval: {yes.get(q.get('other_reached_after_approval'))}."]
    return L


def cpu_lines(results: dict) -> list[str]:
    cpu = results.get("cpu")
    if not cpu:
        return []
    L = ["## CPU during the phases", "",
         "Per thread, from `/proc/PID/task/*/stat` (100 % = one core busy); machine: all "
         f"{next(iter(cpu.values())).get('cores')} cores together.", "",
         "| phase | s | machine busy % | load 1m | ovs-vswitchd % | its busiest threads | "
         "ryu-manager % |", "|---|---:|---:|---:|---:|---|---:|"]
    for phase, c in cpu.items():
        procs = c.get("processes", {})
        ovs = procs.get("ovs-vswitchd", {})
        ryu = procs.get("ryu-manager", {})
        top = ", ".join(f"{t['thread']} {t['cpu_percent']}" for t in ovs.get("threads", [])[:3]
                        if t["cpu_percent"] > 0)
        L.append(f"| {phase} | {c['wall_s']} | {c['machine_busy_percent']} | {c['loadavg_1m']} "
                 f"| {ovs.get('cpu_percent', '')} | {top} | {ryu.get('cpu_percent', '')} |")
    dp = (results.get("datapath") or {}).get("policy") or {}
    if dp.get("pmd_stats_show"):
        L += ["", "Userspace datapath during the saturated policy phase "
              "(`ovs-appctl dpif-netdev/pmd-stats-show`):", "", "```",
              *dp["pmd_stats_show"], "```"]
    return L + [""]


def write_report(report_dir: Path, results: dict, pol, base, idle=None) -> Path:
    files = _plots(report_dir, results, pol, base, idle)
    L = ["# Smart-home emulation report", ""]
    cfg = results["config"]
    L += [f"Uplink {cfg['uplink_mbit']} Mbit/s, QoS phase {cfg['duration']} s per run, "
          f"model classes {', '.join(results['model']['labels'])} "
          f"(threshold {results['model']['threshold']}"
          + (f"; OOD score {results['model']['ood']['method']}, above "
             f"{results['model']['ood']['threshold']:.4f}: unknown"
             if results["model"].get("ood") else "")
          + f"). Wall time {results.get('wall_s')} s.", ""]
    table = (results.get("replay") or {}).get("classification")
    L += ["## Classification of replayed real sessions", "",
          f"Source: {results['replay']['source']}.", ""]
    if table:
        acc = table["correct"] / table["total"] if table["total"] else float("nan")
        L += [f"{table['correct']} of {table['total']} sessions labelled right ({acc:.0%}).", ""]
        preds = table["labels"]
        L += ["| true \\ gateway | " + " | ".join(preds) + " |",
              "|---|" + "---:|" * len(preds)]
        for t, row in table["matrix"].items():
            L.append(f"| {t} | " + " | ".join(str(row[p]) for p in preds) + " |")
        L += ["", f"![confusion]({files.get('confusion', '')})", ""]
    enf = results.get("enforcement", {})
    L += ["## Enforcement", ""]
    if "dropped_sessions" in enf:
        L += [f"- Dropped sessions: {enf['dropped_sessions']}; their packets that still arrived "
              f"more than 50 ms after the decision: {enf['packets_after_drop_decision']}."]
    if "camera_mbps_before_change" in enf:
        L += [f"- Camera meter {enf['camera_meter_kbps_before']} kbit/s: measured "
              f"{enf['camera_mbps_before_change']} Mbit/s ({enf['meter_error_before']:+.1%})."]
        L += [f"- Policy changed live at {enf['policy_change_at_s']} s (meter "
              f"{enf['camera_meter_kbps_after']} kbit/s): measured "
              f"{enf['camera_mbps_after_change']} Mbit/s ({enf['meter_error_after']:+.1%}). "
              f"Reload answer: `{enf.get('reload')}`."]
    flows = results.get("live_flows") or []
    if flows:
        L += ["", "## Live flows as the gateway saw them", "",
              "The live traffic (iperf3, the UDP probe) is nothing the model was trained on; "
              "this is how it was labelled and what the policy made of it.", "",
              "| flow | proto | client | class | confidence | OOD score | policy entry | DSCP "
              "| meter kbit/s |",
              "|---|---|---|---|---:|---:|---|---:|---:|"]
        for f in sorted(flows, key=lambda f: (f["flow"], f["client"])):
            score = f.get("ood_score")
            L.append(f"| {f['flow']} | {f['proto']} | {f['client']} | {f['class']} | "
                     f"{f['confidence']} | {'' if score is None else score} | "
                     f"{f['policy_entry']} | {f['dscp']} | {f['rate_kbps'] or ''} |")
    if "ood" in files:
        L += ["", "## Out-of-distribution score", "",
              "The replayed sessions are held-out sessions of the training classes; the live "
              "flows are traffic of tools the model never saw.", "", f"![ood]({files['ood']})"]
    L += ["", "## Priority under a saturated uplink", "",
          "| run | probe p50 ms | p95 ms | p99 ms | received/sent | bulk Mbit/s | bulk share |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ("idle", "policy", "baseline"):
        r = results.get(name)
        if r:
            L.append(f"| {name} | {r['probe_p50_ms']} | {r['probe_p95_ms']} | {r['probe_p99_ms']} "
                     f"| {r['probe_received']}/{r['probe_sent']} | {r.get('bulk_mbps', '')} "
                     f"| {r.get('bulk_share', '')} |")
    if results.get("latency_p95_ratio_baseline_over_policy"):
        L += ["", f"p95 latency without the policy is "
              f"{results['latency_p95_ratio_baseline_over_policy']}x that with it."]
    if results.get("latency_p95_ratio_policy_over_idle"):
        ratio, goal = (results["latency_p95_ratio_policy_over_idle"],
                       results.get("latency_p95_goal_policy_over_idle", 2.0))
        L += ["", f"p95 latency with the policy under the saturated uplink is {ratio}x that of "
              f"the probe alone (idle, same gateway); goal <= {goal}x: "
              f"{'met' if ratio <= goal else 'not met'}."]
    L += ["", f"![latency]({files['latency']})", "", f"![throughput]({files['throughput']})", ""]
    L += time_to_decision_lines(results) + devices_lines(results) + cpu_lines(results)
    path = report_dir / "report.md"
    path.write_text("\n".join(L))
    return path
