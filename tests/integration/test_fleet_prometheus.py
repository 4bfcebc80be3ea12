"""Two homes, one controller each, watched by one real Prometheus: what Prometheus holds
per home (sessions by class, active sessions, packet-in drops) is each gateway's REST view."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from topologies.builtin_captures import builtin_sessions
from topologies.fleet import Fleet, home_label
from topologies.prometheus import prometheus_binary

if prometheus_binary() is None:
    if os.environ.get("EGW_REQUIRE_INTEGRATION") == "1":
        raise RuntimeError("EGW_REQUIRE_INTEGRATION=1 but prometheus is not installed "
                           "(scripts/bootstrap.sh installs it)")
    pytest.skip("prometheus is not installed", allow_module_level=True)

# home 2 tracks at most one not-yet-classified session per port (its excess new
# sessions are shed: packet-ins the gateway drops) and its controller meter is tight
HOME2 = ["--egw-max-mirroring-per-port", "1", "--egw-packet-in-rate", "20",
         "--egw-packet-in-burst", "10"]
FAST = ["--egw-stats-interval", "1"]
REPO = Path(__file__).resolve().parents[2]


def _by(prom, expr: str, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in prom.query(expr)}


def _views(fleet: Fleet, i: int):
    """(REST view, Prometheus view) of home ``i``: sessions by class, active sessions,
    packet-ins shed by the gateway and dropped by the switch's controller meter."""
    (dpid, st), = fleet.client(i).stats().items()
    rest = {"dp_id": dpid,
            "classes": {c: v["sessions"] for c, v in st["classes"].items() if v["sessions"]},
            "active": st["sessions_active"],
            "shed": st["counters"].get("shed", 0),
            "meter_dropped": st["counters"].get("packet_in_meter_dropped", 0)}
    home = f'home="{home_label(i)}"'
    prom = fleet.prom
    active = _by(prom, f"egw_sessions_active{{{home}}}", "dp_id")
    seen = {"dp_id": next(iter(active), None),
            "classes": {c: int(v) for c, v in
                        _by(prom, f"egw_sessions_classified_total{{{home}}}", "cls").items() if v},
            "active": int(sum(active.values())),
            "shed": int(sum(_by(prom, f'egw_packet_ins_total{{{home},kind="shed"}}',
                                "dp_id").values())),
            "meter_dropped": int(sum(_by(prom, f"egw_packet_in_meter_dropped_total{{{home}}}",
                                         "dp_id").values()))}
    return rest, seen


@pytest.mark.timeout(240)
def test_prometheus_sees_each_home_as_its_gateway_does(ovs, mininet_slot, tmp_path):
    with Fleet(tmp_path, homes=2, extra_args={1: FAST, 2: FAST + HOME2}) as fleet:
        assert len({r.of_port for r in fleet.ryus.values()}) == 2     # one controller each
        fleet.replay(1, builtin_sessions(["streaming", "voip", "chat"], per_class=2))
        fleet.replay(2, builtin_sessions(["p2p", "email"], per_class=4, seed=1))
        # the gateways settle (every session classified by the mirror time cap or shed:
        # their REST views stop changing), then Prometheus catches up (a scrape a second)
        deadline = time.monotonic() + 45
        last, same = None, 0
        while True:
            views = {i: _views(fleet, i) for i in (1, 2)}
            rest_now = [rest for rest, _ in views.values()]
            same = same + 1 if rest_now == last else 0
            last = rest_now
            settled = same >= 4
            if (settled and all(rest == seen for rest, seen in views.values())) \
                    or time.monotonic() > deadline:
                break
            time.sleep(1)
        for i, (rest, seen) in views.items():
            assert rest == seen, (i, rest, seen)
        (r1, _), (r2, _) = views[1], views[2]
        assert r1["dp_id"] != r2["dp_id"]
        assert sum(r1["classes"].values()) >= 4 and r1["shed"] == 0
        # home 2's bounds held (its gateway shed sessions, its switch's controller meter
        # dropped packet-ins), and Prometheus saw both
        assert r2["shed"] > 0 and r2["meter_dropped"] > 0
        # the shipped alert rules are loaded and the shed alert is raised for home 2 only
        rules = [r["name"] for g in fleet.prom.rules() for r in g["rules"]]
        assert {"EgwSwitchDisconnected", "EgwControllerMeterDroppingPacketIns",
                "EgwClassifierFaults", "EgwPolicyReloadRejected",
                "EgwSessionTableNearBound"} <= set(rules)
        deadline = time.monotonic() + 15
        while not (alerts := fleet.prom.query('ALERTS{alertname="EgwPacketInsShed"}')):
            assert time.monotonic() < deadline, "no EgwPacketInsShed alert"
            time.sleep(0.5)
        assert {a["metric"]["home"] for a in alerts} == {home_label(2)}
        # every query of the Grafana dashboard is valid PromQL with data behind it
        dash = json.loads((REPO / "deploy" / "grafana" / "egw.json").read_text())
        empty = [t["expr"] for p in dash["panels"] for t in p["targets"]
                 if not fleet.prom.query(t["expr"].replace("$home", ".*"))]
        assert not [e for e in empty if "sessions_classified" in e or "packet_ins" in e
                    or "sessions_active" in e or "switch_connected" in e], empty
