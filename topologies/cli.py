"""`egw emulate`: run a Mininet scenario against the real gateway and report."""
from __future__ import annotations

from pathlib import Path

TOPOS = ("smart_home", "basic", "devices")


def register(sub) -> None:
    p = sub.add_parser(
        "emulate",
        help="run a Mininet scenario through the real gateway and write a report",
        description="Start a private Open vSwitch, `ryu-manager ryu_apps/egw.py` and a Mininet "
        "topology; replay real sessions and send live traffic; measure classification, "
        "enforcement and priority; tear down only what was started. Needs root.",
    )
    p.add_argument("--topo", choices=TOPOS, default="smart_home",
                   help="smart_home (default): the full scenario, its devices run last; "
                   "basic: ping + TCP only; devices: the devices run alone (IoT devices "
                   "replay held-out setup captures and are identified, an unknown one is "
                   "quarantined until approved)")
    p.add_argument("--policy", type=Path, help="policy YAML (default: policies/smart_home.yaml)")
    p.add_argument("--model", type=Path, help="model bundle (default: the embedded one)")
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds of live traffic per run (default 20)")
    p.add_argument("--uplink-mbit", type=float, default=20.0,
                   help="WAN bottleneck (default 20 Mbit/s)")
    p.add_argument("--replay-per-class", type=int, default=8,
                   help="real sessions replayed per class (default 8)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the run without policy (no latency ratio)")
    p.add_argument("--idle-duration", type=float, default=10.0,
                   help="seconds of the probe alone before the QoS phase, the reference for "
                   "its latency (default 10; 0 skips it)")
    p.add_argument("--no-devices", action="store_true",
                   help="smart_home: skip the devices run (after the QoS runs)")
    p.add_argument("--data", type=Path,
                   help="folder with iscx-apps/ and iot-sentinel/ (default ../shared/data)")
    p.add_argument("--report", type=Path, help="report directory (default reports/<topo>)")
    p.set_defaults(func=_emulate)


def _emulate(args) -> int:
    report = args.report or Path("reports") / args.topo
    if args.topo == "basic":
        from topologies import basic

        res = basic.run(duration=min(args.duration, 5.0), report_dir=report)
        print(f"ping loss: {res['ping_loss_percent']}%   TCP through the gateway: "
              f"{res.get('tcp_mbps', 'failed')} Mbit/s")
        print(f"report: {report / 'basic.json'}")
        return 0 if res["ping_loss_percent"] == 0 and "tcp_mbps" in res else 1

    if args.topo == "devices":
        from topologies import devices_phase

        res = devices_phase.run_devices(report, data_dir=args.data, policy=args.policy)
        devices_phase.print_devices(res)
        print(f"report: {report / 'devices.json'}")
        return 0 if devices_phase.devices_ok(res) else 1

    from topologies.scenario import ScenarioConfig, run_scenario

    cfg = ScenarioConfig(policy=args.policy, model=args.model, duration=args.duration,
                         uplink_mbit=args.uplink_mbit, replay_per_class=args.replay_per_class,
                         baseline=not args.no_baseline, data_dir=args.data, report_dir=report,
                         idle_duration=args.idle_duration, devices=not args.no_devices)
    res = run_scenario(cfg)
    print_summary(res)
    print(f"report: {report / 'report.md'}")
    return 0


def print_summary(res: dict) -> None:
    table = (res.get("replay") or {}).get("classification")
    if table:
        print(f"classification: {table['correct']}/{table['total']} replayed sessions labelled "
              f"right ({res['replay']['source']})")
    enf = res.get("enforcement", {})
    if "dropped_sessions" in enf:
        print(f"drop: {enf['dropped_sessions']} sessions dropped, "
              f"{enf['packets_after_drop_decision']} packets passed after the decision")
    if "camera_mbps_before_change" in enf:
        print(f"meter: camera {enf['camera_mbps_before_change']} Mbit/s at "
              f"{enf['camera_meter_kbps_before']} kbit/s, then "
              f"{enf['camera_mbps_after_change']} Mbit/s at {enf['camera_meter_kbps_after']} "
              "kbit/s after the live policy change")
    ttd = [r for r in (res.get("time_to_decision") or {}).get("rows", []) if r["class"] == "all"]
    if ttd:
        r = ttd[0]
        print(f"time to decision: median {r['median_ms']} ms, {r['median_packets']} packets "
              f"({r['filled']}/{r['sessions']} replayed sessions filled the model's budget; "
              "per class in the report)")
    if "idle" in res:
        r = res["idle"]
        print(f"{'idle':8s}: probe p50 {r['probe_p50_ms']} ms, p95 {r['probe_p95_ms']} ms "
              "(probe alone)")
    for name in ("policy", "baseline"):
        if name in res:
            r = res[name]
            print(f"{name:8s}: probe p50 {r['probe_p50_ms']} ms, p95 {r['probe_p95_ms']} ms; "
                  f"bulk {r['bulk_mbps']} Mbit/s")
    if res.get("latency_p95_ratio_baseline_over_policy"):
        print(f"p95 latency ratio (no policy / policy): "
              f"{res['latency_p95_ratio_baseline_over_policy']}x")
    if res.get("latency_p95_ratio_policy_over_idle"):
        print(f"p95 latency ratio (policy, saturated / idle): "
              f"{res['latency_p95_ratio_policy_over_idle']}x "
              f"(goal <= {res.get('latency_p95_goal_policy_over_idle', 2.0)}x)")
    if res.get("devices"):
        from topologies.devices_phase import print_devices

        print_devices(res["devices"])
    ovs = ((res.get("cpu") or {}).get("policy") or {}).get("processes", {}).get("ovs-vswitchd")
    if ovs and ovs.get("threads"):
        c = res["cpu"]["policy"]
        print(f"cpu (saturated policy phase): ovs-vswitchd {ovs['cpu_percent']}% of a core "
              f"(busiest thread {ovs['threads'][0]['thread']} "
              f"{ovs['threads'][0]['cpu_percent']}%), machine {c['machine_busy_percent']}% "
              f"of {c['cores']} cores busy")
