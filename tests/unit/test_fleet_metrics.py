"""The metrics a fleet's Prometheus alerts on (deploy/prometheus/alerts.yml): the switch's
connection, the session table's bound and the controller meter's drops."""
from __future__ import annotations

import pytest

from classifier.preprocess import Preprocess
from ryu_apps.gateway.engine import GatewayEngine
from ryu_apps.gateway.metrics import Metrics
from ryu_apps.gateway.rules import ReadRequest
from tests.unit.test_gateway_engine import WAN, FakeClassifier, policy_enforcer


def _value(metrics: Metrics, name: str, dp: str = "%016x" % 7) -> float:
    return metrics.registry.get_sample_value(name, {"dp_id": dp})


def _engine(metrics, **kw):
    return GatewayEngine(Preprocess(repr="packet1480"), FakeClassifier(), policy_enforcer(),
                         wan_port=WAN, clock=lambda: 0.0, metrics=metrics, dp_id=7,
                         max_sessions=500, **kw)


def test_switch_connection_and_session_bound_are_gauges():
    m = Metrics()
    eng = _engine(m)
    assert _value(m, "egw_sessions_max") == 500
    eng.switch_connected(fresh=True)
    assert _value(m, "egw_switch_connected") == 1
    eng.switch_disconnected()
    assert _value(m, "egw_switch_connected") == 0
    eng.switch_connected(fresh=False)
    assert _value(m, "egw_switch_connected") == 1


def test_counters_alerted_on_exist_at_zero_from_the_start():
    """increase() does not count a series' first sample: a shed or drop counter must
    exist at 0 before its first increment for the alerts to see it rise."""
    m = Metrics()
    _engine(m)
    assert _value(m, "egw_packet_in_meter_dropped_total") == 0
    for kind in ("shed", "mirror", "duplicate"):
        assert m.registry.get_sample_value(
            "egw_packet_ins_total", {"dp_id": "%016x" % 7, "kind": kind}) == 0


def test_controller_meter_drops_are_counted_from_the_switch_meter_stats():
    m = Metrics()
    eng = _engine(m, packet_in_rate=100)
    assert ReadRequest("controller_meter") in eng.stats_requests()
    eng.switch_connected(fresh=True)
    for dropped in (0, 5, 12, 12):               # cumulative counts, as the switch reports
        eng.controller_meter_stats(dropped)
    assert _value(m, "egw_packet_in_meter_dropped_total") == 12
    eng.switch_connected(fresh=False)            # the meter is re-created: counts restart
    eng.controller_meter_stats(3)
    assert _value(m, "egw_packet_in_meter_dropped_total") == 15
    assert eng.stats()["counters"]["packet_in_meter_dropped"] == 15
    # no controller meter, no poll of it
    assert _engine(Metrics(), packet_in_rate=0).stats_requests() == [ReadRequest("session_stats")]


def test_the_controller_meter_stats_request_serializes():
    pytest.importorskip("ryu")
    from ryu.ofproto import ofproto_v1_3 as ofp

    from ryu_apps import ofmsg

    o = ofmsg.to_ofp(ofmsg.null_datapath(1), ReadRequest("controller_meter"))
    o.serialize()
    assert o.meter_id == ofp.OFPM_CONTROLLER
