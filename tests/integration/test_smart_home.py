"""Smart-home validation: the full scenario with the real gateway, asserted with thresholds.

One run of :func:`topologies.scenario.run_scenario` (policy run with replay and a live
policy change, then the baseline run, then the devices run) feeds every assertion below.
"""
from __future__ import annotations

import json
import math

import pytest

from tests.conftest import SHARED_DATA
from topologies.scenario import ScenarioConfig, run_scenario

REAL_DATA = (SHARED_DATA / "iscx-apps").is_dir()
REAL_DEVICES = (SHARED_DATA / "iot-sentinel").is_dir()


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    report = tmp_path_factory.mktemp("smart_home")
    cfg = ScenarioConfig(duration=14.0, replay_per_class=4, report_dir=report)
    res = run_scenario(cfg)
    res["_report"] = report
    return res


@pytest.mark.timeout(400)
def test_every_replayed_session_gets_a_decision(result):
    table = result["replay"]["classification"]
    assert table["total"] >= 12
    unseen = [r for r in table["rows"] if r["predicted"] == "not seen"]
    assert not unseen, unseen
    # Both directions of every allowed replayed session crossed the gateway.
    for r in table["rows"]:
        if r["action"] == "allow":
            assert r["received"] == r["sent"], r


@pytest.mark.skipif(not REAL_DATA, reason="needs ../shared/data/iscx-apps (real sessions)")
def test_replayed_real_sessions_are_mostly_labelled_right(result):
    table = result["replay"]["classification"]
    assert "held-out" in result["replay"]["source"]
    assert table["correct"] / table["total"] >= 0.5, table["matrix"]


@pytest.mark.skipif(not REAL_DATA, reason="the guest's p2p is recognised on real sessions")
def test_dropped_class_passes_nothing_after_classification(result):
    enf = result["enforcement"]
    assert enf["dropped_sessions"] >= 1
    assert enf["packets_after_drop_decision"] == 0


def test_meter_holds_within_15_percent_and_follows_a_live_policy_change(result):
    enf = result["enforcement"]
    assert abs(enf["meter_error_before"]) <= 0.15, enf
    assert abs(enf["meter_error_after"]) <= 0.15, enf
    assert enf["reload"]["ok"] is True
    assert enf["camera_mbps_after_change"] < 0.7 * enf["camera_mbps_before_change"]


def test_priority_class_latency_under_a_saturated_uplink(result):
    pol, base = result["policy"], result["baseline"]
    assert pol["probe_received"] >= 0.9 * pol["probe_sent"]
    # The uplink is saturated in both runs (bulk + camera near the 20 Mbit/s bottleneck).
    assert base["bulk_mbps"] + base["camera_mbps"] >= 0.8 * 20
    assert not math.isnan(pol["probe_p95_ms"]) and not math.isnan(base["probe_p95_ms"])
    assert result["latency_p95_ratio_baseline_over_policy"] >= 3.0, (pol, base)


def test_report_is_written_with_plots(result):
    report = result["_report"]
    for name in ("report.md", "results.json", "throughput.png", "latency_cdf.png"):
        assert (report / name).stat().st_size > 0
    assert "Priority under a saturated uplink" in (report / "report.md").read_text()


def test_idle_reference_and_the_saturated_ratio(result):
    idle, pol = result["idle"], result["policy"]
    assert idle["probe_received"] >= 0.9 * idle["probe_sent"] > 0
    assert idle["probe_p95_ms"] > 0 and not math.isnan(idle["probe_p95_ms"])
    assert result["latency_p95_ratio_policy_over_idle"] == pytest.approx(
        pol["probe_p95_ms"] / idle["probe_p95_ms"], abs=0.01)
    # The goal (<= 2x) is reported, not asserted: the shared CI machine's load decides it.
    cpu = result["cpu"]["policy"]["processes"]
    assert cpu["ovs-vswitchd"]["cpu_percent"] > 0 and cpu["ovs-vswitchd"]["threads"]


def test_time_to_decision_per_replayed_class(result):
    table = result["replay"]["classification"]
    rows = {r["class"]: r for r in result["time_to_decision"]["rows"]}
    assert set(rows) == {r["true"] for r in table["rows"]} | {"all"}
    assert rows["all"]["sessions"] == table["total"]
    for r in rows.values():
        # decided after its first packet and within the mirror time cap (+ tick, load)
        assert 0 <= r["median_ms"] <= r["max_ms"] < 10_000, r
        assert r["median_packets"] >= 1, r


def _unfamiliar_live(result) -> list[dict]:
    return [f for f in result["live_flows"] if f["flow"] in ("laptop bulk upload", "camera video")]


def test_live_flows_of_unfamiliar_tools_come_out_unknown(result):
    """iperf3 bulk uploads and the camera's video are none of the model's classes: most of
    their sessions come out unknown by the OOD score (not a min_confidence floor), none of the
    bulk uploads takes the real-time class, and the report shows the score."""
    assert result["model"]["ood"] is not None
    thr = result["model"]["ood"]["threshold"]
    flows = _unfamiliar_live(result)
    assert len(flows) >= 4
    unknown = [f for f in flows if f["class"] == "unknown"]
    assert all(f["ood_score"] > thr for f in unknown), unknown
    # with the aggregates OOD part (8 runs): 7 of 7 six times, 6 of 7 once, 4 of 7 once
    # (the camera's TCP stream at 1.702 against a threshold of 1.702, one bulk upload at
    # 1.685); the real tools' test part is caught at 84 % (docs/results/open_set.json):
    # were the 7 flows independent, a bound of half of them would fail in about 1.5 % of
    # runs, two thirds in 9 %
    assert len(unknown) >= len(flows) / 2, flows
    assert all(f["dscp"] != 46 for f in flows if f["flow"] == "laptop bulk upload"), flows
    assert (result["_report"] / "ood_scores.png").stat().st_size > 0
    assert "Out-of-distribution score" in (result["_report"] / "report.md").read_text()


@pytest.mark.xfail(reason="issue 13 goal not reached: every such flow unknown held in 6 of "
                          "the 8 runs made with the aggregates OOD part; in the other two 1 and "
                          "3 of 7 scored at or just under the threshold", strict=False)
def test_every_live_flow_of_unfamiliar_tools_comes_out_unknown(result):
    flows = _unfamiliar_live(result)
    assert flows and all(f["class"] == "unknown" for f in flows), flows


@pytest.mark.timeout(400)
def test_devices_are_identified_and_an_unknown_one_quarantined_after_the_qos_runs(result):
    """The devices run: replayed setup captures (held-out IoT Sentinel ones with the data,
    built-in ones in CI) identified live from their own MACs, and an unknown device held
    to DNS until approved; in the results, the report and its own folder."""
    dev = result["devices"]
    assert len(dev["devices"]) >= 2, dev
    for r in dev["devices"]:
        assert r["state"] == "identified", r
        assert r["type"] and 0 < r["confidence"] <= 1 and r["packets_needed"] > 0, r
    if REAL_DEVICES:
        assert "held-out" in dev["source"] and all(r["true_type"] for r in dev["devices"])
    q = dev["quarantine"]
    assert q["quarantined"] is True and q["dns_reached_wan"] is True, q
    assert q["tcp443_reached_wan_before_approval"] is False, q
    assert q["approve"]["approved"] is True and q["tcp443_reached_wan_after_approval"] is True
    assert any(line.startswith('egw_devices{dp_id="') for line in dev["metrics"])
    assert 0 < dev["wall_s"] < 120, dev["wall_s"]        # the demo's extra time stays small
    report = result["_report"]
    assert "## Devices identified live" in (report / "report.md").read_text()
    assert (report / "devices" / "devices.json").stat().st_size > 0
    assert "devices" in json.loads((report / "results.json").read_text())
