"""The emulation's summary and report from fake phase results: no switch, no Mininet.

Checks the figures issue 15 added (idle reference and its ratio, time to decision per
class, CPU per thread) are computed and rendered."""
from __future__ import annotations

import json

import pytest

from topologies import cli, scenario
from topologies.cpu import CpuSampler
from topologies.report import write_report
from topologies.traffic import FlowResult


class _Bundle:
    labels = ["chat", "voip"]
    threshold = 0.3
    card = {"model": "fake", "ood": {"name": "embedding/cosine/k=1"}}
    ood = type("Ood", (), {"threshold": 1.5})()


def _run(name, rtt, cam=(), bulk=None):
    r = scenario.RunResult(name)
    r.probe_t = [0.05 * i for i in range(len(rtt))]
    r.probe_rtt_ms, r.probe_sent = list(rtt), len(rtt)
    if bulk is not None:
        r.flows = [FlowResult("camera", "camera", "udp", intervals=list(cam), mbps=4.0),
                   FlowResult("bulk", "laptop", "tcp", intervals=[(1.0, bulk)], mbps=bulk)]
    r.load = {"cpu": {"wall_s": 10.0, "cores": 2, "machine_busy_percent": 90.0,
                      "loadavg_1m": 4.0,
                      "processes": {"ovs-vswitchd": {"cpu_percent": 60.0, "threads": [
                          {"thread": "ovs-vswitchd", "tid": 1, "cpu_percent": 55.0},
                          {"thread": "urcu3", "tid": 2, "cpu_percent": 5.0}]},
                          "ryu-manager": {"cpu_percent": 8.0, "threads": []}}},
              "pmd_stats_show": ["main thread:", "  packets received: 1000"],
              "pmd_perf_show": []}
    return r


class _Replayed:
    def __init__(self, i, label, device="laptop"):
        self.device, self.label, self.source = device, label, "x.pcap"
        self.client_port = 20000 + i
        self.sent, self.received = [3, 2], [3, 2]
        self.arrived_at = {0: 1.0}


def _gw(i, label, first, decided, mirrored, reason, ood_score=0.5):
    from topologies import smart_home as sh
    return {"client": sh.device("laptop").ip, "client_port": 20000 + i, "class": label,
            "confidence": 0.9, "action": "allow", "first_seen": first,
            "classified_at": decided, "mirrored_packets": mirrored, "reason": reason,
            "ood_score": ood_score}


@pytest.fixture
def results(tmp_path):
    cfg = scenario.ScenarioConfig(report_dir=tmp_path, idle_duration=10.0)
    pol = _run("policy", [1.0] * 60 + [2.0] * 40, cam=[(2.0, 4.0)], bulk=16.0)
    base = _run("baseline", [50.0] * 100, cam=[(2.0, 4.0)], bulk=11.0)
    idle = _run("idle", [0.5] * 100)
    replayed = [_Replayed(0, "chat"), _Replayed(1, "chat"), _Replayed(2, "voip")]
    live = {**_gw(3, "unknown", 400.0, 400.01, 8, "model", ood_score=2.5),
            "server_port": scenario.BULK_PORT, "proto": "tcp", "policy_entry": "default",
            "dscp": 0, "rate_kbps": None}
    pol.gateway_sessions = [_gw(0, "chat", 100.0, 100.09, 10, "model"),
                            _gw(1, "chat", 200.0, 203.1, 6, "cap"),
                            _gw(2, "voip", 300.0, 303.0, 9, "cap"), live]
    res = scenario.summarize(cfg, _Bundle(), pol, base, replayed, "fake", idle=idle)
    res["wall_s"] = 1.0
    return res, (pol, base, idle), tmp_path


def test_idle_reference_and_ratio(results):
    res, _, _ = results
    assert res["idle"]["probe_p95_ms"] == pytest.approx(0.5)
    assert res["policy"]["probe_p95_ms"] == pytest.approx(2.0)
    assert res["latency_p95_ratio_policy_over_idle"] == pytest.approx(4.0)
    assert res["latency_p95_ratio_baseline_over_idle"] == pytest.approx(100.0)
    assert res["latency_p95_goal_policy_over_idle"] == 2.0
    # the existing keys stay
    assert res["latency_p95_ratio_baseline_over_policy"] == pytest.approx(25.0)


def test_time_to_decision_per_replayed_class(results):
    res, _, _ = results
    rows = {r["class"]: r for r in res["time_to_decision"]["rows"]}
    assert set(rows) == {"chat", "voip", "all"}
    assert rows["chat"]["sessions"] == 2 and rows["chat"]["filled"] == 1
    assert rows["chat"]["median_ms"] == pytest.approx((90 + 3100) / 2, abs=0.2)
    assert rows["chat"]["median_packets"] == 8
    assert rows["voip"]["median_ms"] == pytest.approx(3000, abs=0.2)
    assert rows["all"]["sessions"] == 3 and rows["all"]["max_packets"] == 10


def test_cpu_and_datapath_per_phase(results):
    res, _, _ = results
    assert set(res["cpu"]) == {"idle", "policy", "baseline"}
    assert res["cpu"]["policy"]["processes"]["ovs-vswitchd"]["cpu_percent"] == 60.0
    assert res["datapath"]["policy"]["pmd_stats_show"][0] == "main thread:"
    json.dumps(res)   # plain JSON


def test_report_renders_the_new_figures(results):
    res, (pol, base, idle), report = results
    text = write_report(report, res, pol, base, idle=idle).read_text()
    assert "| idle | 0.5 |" in text
    assert "4.0x that of the probe alone" in text and "not met" in text
    assert "## Time to decision per class" in text
    assert "| voip | 1 | 0 | 3000.0 |" in text
    assert "## CPU during the phases" in text and "ovs-vswitchd 55.0" in text
    assert (report / "latency_cdf.png").stat().st_size > 0
    # the OOD score: per live flow in its table, and a histogram replayed vs live
    assert "| laptop bulk upload | tcp |" in text and "| unknown | 0.9 | 2.5 | default |" in text
    assert "## Out-of-distribution score" in text and (report / "ood_scores.png").stat().st_size > 0
    assert res["model"]["ood"] == {"method": "embedding/cosine/k=1", "threshold": 1.5}
    assert [r["ood_score"] for r in res["replay"]["classification"]["rows"]] == [0.5] * 3


def test_cli_summary_prints_the_idle_ratio(results, capsys):
    res, _, _ = results
    cli.print_summary(res)
    out = capsys.readouterr().out
    assert "idle    : probe p50 0.5 ms, p95 0.5 ms" in out
    assert "p95 latency ratio (policy, saturated / idle): 4.0x (goal <= 2.0x)" in out
    assert "time to decision: median 3000.0 ms" in out
    assert "ovs-vswitchd 60.0%" in out


def test_cpu_sampler_sees_its_own_busy_thread():
    import os
    import time
    s = CpuSampler({"me": os.getpid()}).start()
    t = time.monotonic()
    while time.monotonic() - t < 0.3:
        pass
    out = s.stop()
    me = out["processes"]["me"]
    assert me["cpu_percent"] > 10 and me["threads"][0]["tid"] > 0
    assert 0 <= out["machine_busy_percent"] <= 100


def test_docs_renderers_take_the_new_keys(results):
    import sys
    sys.path.insert(0, str(scenario.REPO / "benchmarks"))
    import models_doc

    res, _, _ = results
    idle = models_doc.smart_home_idle(res)
    assert "| idle (probe alone) | 0.50 | 0.50 |" in idle and "**4.00x**" in idle
    assert "not met" in idle and "`ovs-vswitchd` 55" in idle
    dec = models_doc.smart_home_decision(res)
    assert "| **all** | 3 | 1 |" in dec and "| voip | 1 | 0 | 3,000 / 3,000 / 3,000 | 9 / 9 |" in dec


def test_replayed_session_whose_server_spoke_first_is_matched():
    """A replayed IMAP or SSH session starts with the server's greeting: the gateway calls
    the server its client. The match still finds it by the device's address and port."""
    from topologies import smart_home as sh
    from topologies.replay import ReplaySession

    dev = sh.device("laptop")
    s = ReplaySession(sid=1, label="email", device="laptop", server="10.0.0.200", proto=6,
                      client_port=20012, server_port=993, frames=[], source="email#0")
    gw = [{"client": "10.0.0.200", "client_port": 993, "server": dev.ip, "server_port": 20012,
           "class": "email", "confidence": 0.9, "classified_at": 2.0, "first_seen": 1.0},
          {"client": dev.ip, "client_port": 20013, "server": "10.0.0.200", "server_port": 993,
           "class": "voip", "confidence": 0.6, "classified_at": 2.0, "first_seen": 1.0}]
    t = scenario.classification_table([s], gw)
    assert [r["predicted"] for r in t["rows"]] == ["email"] and t["correct"] == 1


def _devices_result():
    """What run_devices returns (its keys), for two held-out captures and the guest."""
    rows = [{"host": "iot1", "mac": "00:17:88:24:76:ff", "capture": "HueBridge/Setup-A-1.pcap",
             "true_type": "HueBridge", "frames_replayed": 40, "replay_seconds": 2.1,
             "state": "identified", "type": "HueBridge", "kind": "hub", "confidence": 0.91,
             "packets_needed": 64, "reason": "model", "quarantined": False, "correct": True},
            {"host": "iot2", "mac": "50:c7:bf:00:fc:a3", "capture": "TP-LinkPlugHS110/x.pcap",
             "true_type": "TP-LinkPlugHS110", "frames_replayed": 12, "replay_seconds": 1.0,
             "state": "identified", "type": "TP-LinkPlugHS100", "kind": "plug",
             "confidence": 0.48, "packets_needed": 20, "reason": "timeout",
             "quarantined": False, "correct": False}]
    return {"source": "held-out IoT Sentinel captures", "max_seconds": 15.0, "devices": rows,
            "quarantine": {"mac": "02:00:00:00:00:10", "quarantined": True,
                           "dns_reached_wan": True,
                           "tcp443_reached_wan_before_approval": False,
                           "approve": {"approved": True},
                           "tcp443_reached_wan_after_approval": True},
            "metrics": ['egw_devices{dp_id="0000000000000001",type="HueBridge"} 1.0'],
            "ryu_log_tail": "...", "wall_s": 21.5}


def test_devices_run_in_results_report_and_summary(results, capsys):
    """The devices run (after the QoS runs) lands in results.json, the report's table and
    the printed summary: type, confidence and packets needed per device, and the
    quarantined device's DNS / TCP 443 before and after approval."""
    res0, (pol, base, idle), report = results
    cfg = scenario.ScenarioConfig(report_dir=report, idle_duration=10.0)
    res = scenario.summarize(cfg, _Bundle(), pol, base, [], "fake", idle=idle,
                             devices=_devices_result())
    assert "ryu_log_tail" not in res["devices"] and res["devices"]["wall_s"] == 21.5
    assert res["devices"]["devices"][1]["type"] == "TP-LinkPlugHS100"
    json.dumps(res)
    text = write_report(report, {**res0, "devices": res["devices"]}, pol, base,
                        idle=idle).read_text()
    assert "## Devices identified live" in text and "21.5 s" in text
    assert ("| iot1 | 00:17:88:24:76:ff | HueBridge/Setup-A-1.pcap | HueBridge | HueBridge "
            "| hub | 0.91 | 64 | model |") in text
    assert "| iot2 |" in text and "| TP-LinkPlugHS100 | plug | 0.48 | 20 | timeout |" in text
    assert ("Its DNS query reached the WAN: yes; its TCP SYN to port 443: no before "
            "`POST /egw/devices/{mac}/approve`, yes after.") in text
    assert "## Devices" not in write_report(report, res0, pol, base, idle=idle).read_text()
    cli.print_summary(res)
    out = capsys.readouterr().out
    assert "devices (held-out IoT Sentinel captures, 21.5 s):" in out
    assert ("iot1 00:17:88:24:76:ff: identified as HueBridge (true: HueBridge), confidence "
            "0.91, 64 packets needed (model)") in out
    assert "DNS reached the WAN: True; TCP 443: False before approval, True after" in out
    import sys
    sys.path.insert(0, str(scenario.REPO / "benchmarks"))
    import models_doc

    doc = models_doc.smart_home_devices(res)
    assert doc.startswith("Source: held-out IoT Sentinel captures; the run took 22 s.")
    assert "| TP-LinkPlugHS100 | plug | 0.48 | 20 | timeout |" in doc and "yes after." in doc
    assert models_doc.smart_home_devices(res0).startswith("Not in this run")


def test_devices_ok_needs_every_device_identified_and_the_quarantine_to_hold():
    from topologies.devices_phase import devices_ok

    good = _devices_result()
    assert devices_ok(good)
    leak = {**good, "quarantine": {**good["quarantine"],
                                   "tcp443_reached_wan_before_approval": True}}
    assert not devices_ok(leak)
    assert not devices_ok({**good, "devices": []})
    assert not devices_ok({**good, "devices": [{**good["devices"][0], "state": "identifying"}]})


def test_devices_run_policy_quarantines_unknown_devices_and_keeps_the_users_types():
    """The devices run's policy: the user's, once, with unknown_device quarantined; a
    policy that already has device_types keeps them (no second key)."""
    from policies import DEFAULT_POLICY_PATH, parse_policy
    from topologies.devices_phase import devices_policy

    base = DEFAULT_POLICY_PATH.read_text()
    mine = base + "device_types:\n  camera: {all: {dscp: AF41}}\n  unknown_device: {action: allow}\n"
    for text in (base, mine):
        out = devices_policy(text)
        assert out.count("device_types:") == 1
        pol = parse_policy(out)
        assert pol.device_types["unknown_device"].action == "quarantine"
        assert pol.classes.keys() == parse_policy(base).classes.keys()
    assert "camera" in parse_policy(devices_policy(mine)).device_types
