"""The smart-home scenario: classification, enforcement and QoS, measured.

One call of :func:`run_scenario` does, each phase against a real
``ryu-manager ryu_apps/egw.py`` on a private Open vSwitch (userspace datapath)
and the :class:`~topologies.smart_home.SmartHomeTopo` network:

1. **Replay** (policy run): real sessions the model never trained on (the
   default bundle's held-out test sessions of ``iscx-apps``; built-in
   synthetic sessions when ``../shared/data`` is absent) are replayed from the
   devices whose role matches their class; the gateway's REST API then says how
   each was labelled (confusion table), and the packets of dropped sessions
   that still arrived after the decision are counted.
2. **QoS** (policy run, then the baseline run): the laptop saturates the
   uplink with TCP bulk flows, the camera sends UDP above its meter, and the
   blood-pressure monitor sends a latency probe. Halfway through, the policy
   file is changed (the camera's rate limit is halved) and reloaded through the
   REST API, and the camera's rate before/after shows the live sessions follow.
   The baseline run repeats the QoS phase with a flat policy (no marking, no
   meters, one WAN class at the same uplink rate): same bottleneck, no QoS.

3. **Devices** (a third, short run after both QoS runs: its own gateway with the device
   model, and network, so nothing of it runs while the probe's latency is measured):
   IoT devices replay held-out IoT Sentinel setup captures from their own MACs and are
   identified live, and an unknown device reaches DNS but not the internet until it is
   approved (:func:`topologies.devices_phase.run_devices`; ``devices`` in the results).

Between the replay and the QoS phase of the policy run, an **idle** phase sends
the probe alone through the same gateway: the physical reference for its latency
(``latency_p95_ratio_policy_over_idle``). During the idle and QoS phases the CPU of
``ovs-vswitchd``'s and ``ryu-manager``'s threads and the machine's is sampled from
``/proc`` and the userspace datapath's own counters are read
(``ovs-appctl dpif-netdev/pmd-stats-show``, ``pmd-perf-show``). The replayed
sessions' REST records (``first_seen``, ``classified_at``, ``mirrored_packets``)
give the time to decision per class.

Everything started here is stopped here, by PID or by the network's own
``net.stop()``.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from topologies import smart_home as sh
from topologies.controller import RyuProcess
from topologies.cpu import CpuSampler
from topologies.gateway_client import GatewayClient
from topologies.mininet_net import build_net, mininet_lock, wait_connected
from topologies.ovs_service import OvsService
from topologies.traffic import (FlowResult, iperf3_client, iperf3_server, parse_iperf3,
                                percentile, probe_client, probe_server)

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
API_TOKEN = "egw-emulation-token"

BULK_PORT, CAMERA_PORT, PROBE_PORT = 5201, 5202, 9000
PROBE_SPORT = 40400
PROBE_IDLE_SPORT = 40401     # the idle phase's probe: its own session (the QoS phase's is new)
STEADY_AFTER_S = 3.0         # probe samples before this are its session being classified


@dataclass
class ScenarioConfig:
    policy: Path | None = None           # default: policies/smart_home.yaml
    model: Path | None = None            # default: the embedded bundle
    duration: float = 20.0               # seconds of the QoS phase (per run)
    uplink_mbit: float = 20.0
    camera_kbps: int = 4000              # the camera's meter before the live policy change
    camera_send_kbps: int = 8000         # what the camera tries to send
    bulk_streams: int = 4
    probe_rate: float = 20.0
    replay_per_class: int = 8
    replay_gap: float = 0.05
    data_dir: Path | None = None         # ../shared/data
    baseline: bool = True
    idle_duration: float = 10.0          # seconds of the probe alone (0: no idle phase)
    devices: bool = True                 # the devices run after the QoS runs
    report_dir: Path = Path("reports/smart_home")


@dataclass
class RunResult:
    name: str
    probe_rtt_ms: list[float] = field(default_factory=list)
    probe_t: list[float] = field(default_factory=list)
    probe_sent: int = 0
    flows: list[FlowResult] = field(default_factory=list)
    camera_before_mbps: float = float("nan")
    camera_after_mbps: float = float("nan")
    policy_change_at: float = float("nan")
    reload: dict = field(default_factory=dict)
    gateway_sessions: list[dict] = field(default_factory=list)
    flow_dump: list[str] = field(default_factory=list)
    load: dict = field(default_factory=dict)     # PhaseMeter.stop(): CPU and datapath counters
    #: /egw/sessions right after the replay, once its sessions are decided (read later, the
    #: idle and QoS phases outlast the shortest idle_timeout and expired sessions are gone)
    replay_sessions: list[dict] = field(default_factory=list)


# ---- policies ------------------------------------------------------------------
def scenario_policy(base: dict, uplink_kbps: int, camera_kbps: int) -> dict:
    """The user's policy for this home: uplink rate of the emulated WAN, and device
    overrides for the topology's devices (unless the policy already has some)."""
    doc = copy.deepcopy(base)
    doc.setdefault("wan", {})["uplink_kbps"] = uplink_kbps
    if not doc.get("devices"):
        doc["devices"] = [
            {"name": "blood-pressure-monitor", "mac": sh.device("bpm").mac,
             "all": {"dscp": "EF"}},
            {"name": "ip-camera", "mac": sh.device("camera").mac,
             "all": {"dscp": "AF41",
                     "rate_limit": {"kbps": camera_kbps, "scope": "session"}}},
            {"name": "guest", "mac": sh.device("guest").mac,
             "classes": {"p2p": {"action": "drop"}}},
        ]
    return doc


def baseline_policy(policy: dict) -> dict:
    """Same classes and uplink, no QoS: everything allowed, unmarked, one WAN class."""
    uplink = policy["wan"]["uplink_kbps"]
    flat = {"action": "allow", "dscp": "best-effort", "idle_timeout": 60}
    return {
        "version": 1,
        "description": "baseline: no QoS (same bottleneck, one FIFO-like class)",
        "default": dict(flat),
        "classes": {c: dict(flat) for c in (policy.get("classes") or {})},
        "wan": {"uplink_kbps": uplink, "default_class": "all",
                "classes": [{"name": "all", "dscp": ["CS0"], "rate_kbps": uplink, "prio": 0}]},
    }


def _write_policy(doc: dict, path: Path) -> Path:
    from policies import load_policy

    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_policy(path)  # validate now: a bad scenario policy is a clear error here
    return path


# ---- replay ----------------------------------------------------------------------
def _replay_plan(cfg: ScenarioConfig, bundle) -> tuple[list, str]:
    """Sessions to replay: held-out real ones where available, else built-in ones."""
    from topologies import replay as rp

    data = cfg.data_dir or SHARED_DATA
    labels = set(bundle.labels)
    wanted = {c for d in sh.DEVICES for c in d.replay} & labels
    plan: list[tuple[str, rp.CapturedSession]] = []
    source = ""
    apps = data / "iscx-apps"
    if apps.is_dir():
        from topologies.heldout import heldout_filter, load_taxonomy_map

        keep, how = heldout_filter(bundle, apps)
        chosen = rp.load_sessions(apps, wanted, taxonomy=load_taxonomy_map(data), keep=keep,
                                  per_class=cfg.replay_per_class, seed=1)
        source = f"{apps} ({how})"
    else:
        from topologies.builtin_captures import builtin_sessions

        chosen = builtin_sessions(wanted, per_class=max(2, cfg.replay_per_class // 2))
        source = "built-in synthetic sessions (../shared/data absent)"
    for d in sh.DEVICES:
        for c in d.replay:
            for cs in chosen.get(c, []):
                plan.append((d.name, cs))
    return plan, source


def _settled_sessions(gw: GatewayClient, timeout: float = 8.0) -> list[dict]:
    """The gateway's sessions once none is still being mirrored or waiting for the model
    (the mirror time cap is 3 s by default), or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        sessions = gw.sessions()
        if (all(g.get("classified_at") is not None for g in sessions)
                or time.monotonic() > deadline):
            return sessions
        time.sleep(0.25)


def _do_replay(net, cfg: ScenarioConfig, plan) -> list:
    from topologies.replay import Replayer, rewrite

    sessions = []
    for i, (dev, cs) in enumerate(plan):
        d = sh.device(dev)
        server = sh.INET_IPS["cloud"]
        sessions.append(rewrite(cs, i, dev, d.ip, d.mac, server, sh.INET_MAC, 20000 + i))
    names = {dev for dev, _ in plan} | {"inet"}
    hosts = {n: (net.get(n).pid, net.get(n).defaultIntf().name) for n in names}
    player = Replayer(hosts, server_host="inet")
    try:
        player.replay(sessions, gap=cfg.replay_gap, concurrency=8)
    finally:
        player.close()
    return sessions


def classification_table(sessions, gw_sessions: list[dict]) -> dict:
    """Match replayed sessions to the gateway's decisions by (device IP, the device's
    port). The gateway names the sender of a session's first packet its client: in a
    session whose server spoke first (IMAP's greeting, SSH's banner) that is the server,
    so either end of a gateway session may be the device's."""
    by_port = {}
    for g in gw_sessions:
        if g.get("server") is not None and g.get("server_port") is not None:
            by_port[(g["server"], int(g["server_port"]))] = g
    for g in gw_sessions:
        by_port[(g["client"], int(g["client_port"]))] = g
    rows = []
    for s in sessions:
        dev = sh.device(s.device)
        g = by_port.get((dev.ip, s.client_port)) or {}
        rows.append({
            "device": s.device, "true": s.label, "source": s.source,
            "predicted": g.get("class", "not seen"),
            "confidence": g.get("confidence"),
            "ood_score": g.get("ood_score"),
            "action": g.get("action"),
            "classified_at": g.get("classified_at"),
            "first_seen": g.get("first_seen"),
            "mirrored_packets": g.get("mirrored_packets"),
            "reason": g.get("reason"),
            "sent": list(s.sent), "received": list(s.received),
            "arrived_after_decision": _after(s, g.get("classified_at")),
        })
    labels = sorted({r["true"] for r in rows} | {r["predicted"] for r in rows})
    matrix = {t: {p: 0 for p in labels} for t in sorted({r["true"] for r in rows})}
    for r in rows:
        matrix[r["true"]][r["predicted"]] += 1
    correct = sum(r["true"] == r["predicted"] for r in rows)
    return {"rows": rows, "matrix": matrix, "labels": labels, "correct": correct,
            "total": len(rows)}


def time_to_decision(table: dict) -> dict:
    """Per replayed (true) class: first packet seen by the gateway -> its decision
    (REST ``classified_at - first_seen``, the gateway's monotonic clock) and the
    packet-ins it mirrored until then; ``filled``: sessions whose model budget filled
    (the others were decided at the mirror cap, time or packets, with what they had)."""
    groups: dict[str, list[dict]] = {}
    for r in table["rows"]:
        if r.get("classified_at") is None or r.get("first_seen") is None:
            continue
        groups.setdefault(r["true"], []).append(r)
    rows = []
    every = [r for c in sorted(groups) for r in groups[c]]
    for cls, rs in [*((c, groups[c]) for c in sorted(groups)), ("all", every)]:
        if not rs:
            continue
        ms = [1000 * (float(r["classified_at"]) - float(r["first_seen"])) for r in rs]
        pk = [r["mirrored_packets"] for r in rs if r.get("mirrored_packets") is not None]
        rows.append({"class": cls, "sessions": len(rs),
                     "filled": sum(r.get("reason") == "model" for r in rs),
                     "median_ms": round(percentile(ms, 50), 1),
                     "p95_ms": round(percentile(ms, 95), 1),
                     "max_ms": round(max(ms), 1),
                     "median_packets": percentile(pk, 50) if pk else None,
                     "max_packets": max(pk) if pk else None})
    return {"rows": rows,
            "how": "REST /egw/sessions of the replayed sessions: classified_at - first_seen "
                   "(ms, the gateway's clock) and mirrored_packets (packet-ins to the decision)"}


def _after(s, classified_at) -> int | None:
    """Packets of the session that arrived later than 50 ms after the decision (rules
    need a moment to reach the datapath: duplicate packet-ins are expected). Both
    clocks are the machine's CLOCK_MONOTONIC (the gateway runs on the same host)."""
    if classified_at is None:
        return None
    return sum(1 for t in s.arrived_at.values() if t > float(classified_at) + 0.05)


# ---- what the machine spends ------------------------------------------------------
class PhaseMeter:
    """CPU per thread of the gateway's processes and the userspace datapath's counters
    over one phase: ``start()``, then ``stop()`` -> a plain dict."""

    def __init__(self, ovs: OvsService | None, pids: dict[str, int]):
        self.ovs = ovs
        self.sampler = CpuSampler(pids)

    def start(self) -> None:
        if self.ovs is not None:
            self.ovs.appctl("dpif-netdev/pmd-stats-clear")
        self.sampler.start()

    def stop(self) -> dict:
        out = {"cpu": self.sampler.stop()}
        if self.ovs is not None:
            for key, cmd in (("pmd_stats_show", "dpif-netdev/pmd-stats-show"),
                             ("pmd_perf_show", "dpif-netdev/pmd-perf-show")):
                text = self.ovs.appctl(cmd)
                out[key] = [ln.rstrip() for ln in text.splitlines() if ln.strip()][:40]
        return out


def _probe_result(res: "RunResult", out: str) -> None:
    try:
        doc = json.loads(out[out.index("{"):])
        res.probe_rtt_ms, res.probe_t, res.probe_sent = doc["rtt_ms"], doc["t"], doc["sent"]
    except ValueError:
        log.error("probe failed: %s", out[-300:])


def _idle_phase(net, cfg: ScenarioConfig, meter: PhaseMeter | None = None) -> RunResult:
    """The probe alone through the same gateway (its own session): the reference."""
    res = RunResult("idle")
    inet, bpm = net.get("inet"), net.get("bpm")
    d = cfg.idle_duration
    server = probe_server(inet, PROBE_PORT, d + 30)
    try:
        if meter:
            meter.start()
        probe = probe_client(bpm, sh.INET_IPS["cloud"], PROBE_PORT, d, rate=cfg.probe_rate,
                             sport=PROBE_IDLE_SPORT)
        _, out = probe.wait(timeout=d + 30)
        if meter:
            res.load = meter.stop()
        _probe_result(res, out)
    finally:
        server.stop()
    return res


# ---- QoS phase --------------------------------------------------------------------
def _qos_phase(net, cfg: ScenarioConfig, name: str, gw: GatewayClient,
               change_policy=None, meter: PhaseMeter | None = None) -> RunResult:
    res = RunResult(name)
    inet = net.get("inet")
    bpm, camera, laptop = net.get("bpm", "camera", "laptop")
    cloud = sh.INET_IPS["cloud"]
    d = cfg.duration
    cam_srv, bulk_srv = iperf3_server(inet, CAMERA_PORT), iperf3_server(inet, BULK_PORT)
    servers = [cam_srv, bulk_srv, probe_server(inet, PROBE_PORT, d + 30)]
    try:
        t_cam = time.monotonic()
        cam = iperf3_client(camera, cloud, CAMERA_PORT, d, udp_kbps=cfg.camera_send_kbps)
        probe = probe_client(bpm, cloud, PROBE_PORT, d, rate=cfg.probe_rate, sport=PROBE_SPORT)
        time.sleep(1.0)  # the probe and camera sessions get classified before the bulk starts
        bulk_offset = time.monotonic() - t_cam
        bulk = iperf3_client(laptop, cloud, BULK_PORT, d - 2, streams=cfg.bulk_streams)
        if meter:   # from here until both iperf3 flows end: the saturated uplink
            meter.start()
        if change_policy is not None:
            time.sleep(max(0.0, d / 2 - bulk_offset))
            res.policy_change_at = round(time.monotonic() - t_cam, 2)
            res.reload = change_policy()
        # Throughput as received: the servers' reports (the clients' are what was sent).
        for client, server, name, dev, kind in (
                (cam, cam_srv, "camera video (UDP)", "camera", "udp"),
                (bulk, bulk_srv, f"laptop bulk upload ({cfg.bulk_streams} TCP)", "laptop",
                 "tcp")):
            crc, cout = client.wait(timeout=d + 30)
            try:
                src, sout = server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.stop()
                src, sout = -1, ""
            flow = parse_iperf3(name, dev, kind, src, sout)
            if client is bulk:   # one time axis: seconds since the camera started
                flow.intervals = [(round(t + bulk_offset, 3), v) for t, v in flow.intervals]
            if flow.error and crc != 0:
                flow.error = f"client: {cout.strip()[-200:]}; server: {flow.error}"
            res.flows.append(flow)
        if meter:
            res.load = meter.stop()
        rc, out = probe.wait(timeout=d + 30)
        _probe_result(res, out)
        try:
            res.gateway_sessions = gw.sessions()
        except OSError as exc:
            log.error("REST sessions failed: %s", exc)
    finally:
        for s in servers:
            s.stop()
    cam_flow = res.flows[0]
    if cam_flow.intervals and change_policy is not None:
        cut = res.policy_change_at
        before = [v for t, v in cam_flow.intervals if 1.0 < t <= cut]
        after = [v for t, v in cam_flow.intervals if t > cut + 1.0]
        res.camera_before_mbps = sum(before) / len(before) if before else float("nan")
        res.camera_after_mbps = sum(after) / len(after) if after else float("nan")
    return res


# ---- one run -------------------------------------------------------------------------
def _run_once(cfg: ScenarioConfig, name: str, policy_path: Path, replay_plan=None,
              change_policy_doc: dict | None = None, idle: bool = False
              ) -> tuple[RunResult, list, RunResult | None]:
    extra = ["--egw-policy", str(policy_path), "--egw-wan-port", "egw1-eth1"]
    if cfg.model:
        extra += ["--egw-model", str(cfg.model)]
    replayed: list = []
    idle_res = None
    with OvsService() as ovs:
        ovs.activate()
        with RyuProcess(extra_args=extra, log_path=cfg.report_dir / f"ryu-{name}.log",
                        token=API_TOKEN) as ryu:
            gw = GatewayClient(ryu.rest_url, token=ryu.token)
            net = build_net(sh.SmartHomeTopo(), ryu.of_port)
            try:
                net.start()
                if not wait_connected(net, 20):
                    raise RuntimeError("the gateway switch never connected:\n" + ryu.log_tail())
                gw.wait_ready()
                if replay_plan:
                    replayed = _do_replay(net, cfg, replay_plan)
                    replay_sessions = _settled_sessions(gw)
                pids = {"ovs-vswitchd": ovs.pids.get("ovs-vswitchd"),
                        "ryu-manager": ryu.proc.pid if ryu.proc else None}
                if idle and cfg.idle_duration > 0:
                    idle_res = _idle_phase(net, cfg, PhaseMeter(ovs, pids))

                def change():
                    policy_path.write_text(yaml.safe_dump(change_policy_doc, sort_keys=False))
                    return gw.reload_policy()

                res = _qos_phase(net, cfg, name, gw,
                                 change_policy=change if change_policy_doc else None,
                                 meter=PhaseMeter(ovs, pids))
                if replay_plan:
                    res.replay_sessions = replay_sessions
                res.flow_dump = ovs.ofctl("egw1", "dump-flows").splitlines()
            finally:
                net.stop()
    return res, replayed, idle_res


def run_scenario(cfg: ScenarioConfig) -> dict:
    """Run the policy run (replay + QoS with a live policy change), the baseline run and
    the devices run; write ``report.md``, ``results.json`` and plots into
    ``cfg.report_dir`` (the devices run's files into its ``devices/``)."""
    from classifier.bundle import DEFAULT_BUNDLE_DIR, load_bundle
    from policies import DEFAULT_POLICY_PATH
    from topologies.report import write_report

    cfg.report_dir = Path(cfg.report_dir)
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(cfg.model or DEFAULT_BUNDLE_DIR)
    base = yaml.safe_load(Path(cfg.policy or DEFAULT_POLICY_PATH).read_text())
    uplink = int(cfg.uplink_mbit * 1000)
    pol = scenario_policy(base, uplink, cfg.camera_kbps)
    policy_path = _write_policy(pol, cfg.report_dir / "policy.yaml")
    changed = scenario_policy(base, uplink, cfg.camera_kbps // 2)
    plan, source = _replay_plan(cfg, bundle)

    t_start = time.time()
    with mininet_lock():
        with_policy, replayed, idle = _run_once(cfg, "policy", policy_path, plan, changed,
                                                idle=True)
        baseline = None
        if cfg.baseline:
            base_path = _write_policy(baseline_policy(pol), cfg.report_dir / "baseline.yaml")
            baseline, _, _ = _run_once(cfg, "baseline", base_path)
        devices = None
        if cfg.devices:     # after every QoS measurement: it never shares their time
            from topologies.devices_phase import run_devices

            devices = run_devices(cfg.report_dir / "devices", data_dir=cfg.data_dir,
                                  policy=cfg.policy, lock=False)
    results = summarize(cfg, bundle, with_policy, baseline, replayed, source, idle=idle,
                        devices=devices)
    results["wall_s"] = round(time.time() - t_start, 1)
    (cfg.report_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    write_report(cfg.report_dir, results, with_policy, baseline, idle=idle)
    return results


def _probe_stats(run: RunResult) -> dict:
    # Steady state: skip the probe's first seconds (its session is being classified).
    steady = [r for t, r in zip(run.probe_t, run.probe_rtt_ms) if t > STEADY_AFTER_S]
    return {"probe_sent": run.probe_sent, "probe_received": len(run.probe_rtt_ms),
            "probe_p50_ms": round(percentile(steady, 50), 3),
            "probe_p95_ms": round(percentile(steady, 95), 3),
            "probe_p99_ms": round(percentile(steady, 99), 3)}


def summarize(cfg, bundle, pol: RunResult, base: RunResult | None, replayed, source,
              idle: RunResult | None = None, devices: dict | None = None) -> dict:
    table = (classification_table(replayed, pol.replay_sessions or pol.gateway_sessions)
             if replayed else None)
    out: dict = {
        "config": {k: str(v) for k, v in asdict(cfg).items()},
        "model": {"labels": bundle.labels, "threshold": bundle.threshold,
                  "family": bundle.card.get("model", bundle.card.get("family")),
                  "ood": ({"method": bundle.card["ood"].get("name"),
                           "threshold": bundle.ood.threshold} if bundle.ood is not None else None)},
        "replay": {"source": source, "classification": table},
    }
    if table:
        out["time_to_decision"] = time_to_decision(table)
        dropped = [r for r in table["rows"] if r["action"] == "drop"]
        out["enforcement"] = {
            "dropped_sessions": len(dropped),
            "packets_after_drop_decision": sum(r["arrived_after_decision"] or 0 for r in dropped),
        }
    roles = {BULK_PORT: "laptop bulk upload", CAMERA_PORT: "camera video",
             PROBE_PORT: "blood-pressure monitor probe"}
    out["live_flows"] = [
        {"flow": roles[g["server_port"]] + (" (idle phase)" if g["client_port"] == PROBE_IDLE_SPORT
                                            else ""), "proto": g["proto"],
         "client": f"{g['client']}:{g['client_port']}", "class": g["class"],
         "confidence": g["confidence"], "ood_score": g.get("ood_score"),
         "policy_entry": g["policy_entry"], "dscp": g["dscp"],
         "rate_kbps": g["rate_kbps"], "devices": (g.get("enforcement") or ""),
         "decision_ms": (round(1000 * (g["classified_at"] - g["first_seen"]), 1)
                         if g.get("classified_at") is not None and g.get("first_seen") is not None
                         else None),
         "mirrored_packets": g.get("mirrored_packets")}
        for g in pol.gateway_sessions if g.get("server_port") in roles]
    cam = pol.flows[0] if pol.flows else None
    out.setdefault("enforcement", {})
    if cam and cam.intervals:
        out["enforcement"]["camera_meter_kbps_before"] = cfg.camera_kbps
        out["enforcement"]["camera_mbps_before_change"] = round(pol.camera_before_mbps, 3)
        out["enforcement"]["camera_meter_kbps_after"] = cfg.camera_kbps // 2
        out["enforcement"]["camera_mbps_after_change"] = round(pol.camera_after_mbps, 3)
        out["enforcement"]["meter_error_before"] = round(
            pol.camera_before_mbps * 1000 / cfg.camera_kbps - 1, 3)
        out["enforcement"]["meter_error_after"] = round(
            pol.camera_after_mbps * 1000 / (cfg.camera_kbps // 2) - 1, 3)
        out["enforcement"]["policy_change_at_s"] = pol.policy_change_at
        out["enforcement"]["reload"] = pol.reload
    for run in (pol, base):
        if run is None:
            continue
        bulk = run.flows[1] if len(run.flows) > 1 else None
        out[run.name] = {
            **_probe_stats(run),
            "bulk_mbps": round(bulk.mbps, 2) if bulk else None,
            "bulk_share": round(bulk.mbps / cfg.uplink_mbit, 3) if bulk else None,
            "camera_mbps": round(run.flows[0].mbps, 2) if run.flows else None,
        }
    if base is not None:
        p, b = out["policy"]["probe_p95_ms"], out["baseline"]["probe_p95_ms"]
        out["latency_p95_ratio_baseline_over_policy"] = round(b / p, 1) if p else None
    if idle is not None:
        out["idle"] = {**_probe_stats(idle), "duration_s": cfg.idle_duration,
                       "probe_sport": PROBE_IDLE_SPORT}
        i = out["idle"]["probe_p95_ms"]
        ok = i and not math.isnan(i)
        out["latency_p95_ratio_policy_over_idle"] = (
            round(out["policy"]["probe_p95_ms"] / i, 2) if ok else None)
        out["latency_p95_goal_policy_over_idle"] = 2.0
        if base is not None:
            out["latency_p95_ratio_baseline_over_idle"] = (
                round(out["baseline"]["probe_p95_ms"] / i, 1) if ok else None)
    if devices is not None:    # its ryu log tail stays in devices/devices.json
        out["devices"] = {k: v for k, v in devices.items() if k != "ryu_log_tail"}
    loads = {r.name: r.load for r in (idle, pol, base) if r is not None and r.load}
    if loads:
        out["cpu"] = {n: ld["cpu"] for n, ld in loads.items()}
        out["datapath"] = {n: {k: v for k, v in ld.items() if k != "cpu"}
                           for n, ld in loads.items()}
    return out
