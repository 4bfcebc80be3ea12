"""Controller restart, the pure part: a new engine reads the switch's rules and meters
back (``switch_connected(fresh=True, readback=True)`` + ``adopt``) instead of clearing
them; sessions, classes and meters are re-learnt; stale rules and unused meters go;
no meter is created twice; the packet-in meter is on the controller path."""
from __future__ import annotations

from ryu_apps.gateway.engine import GatewayEngine
from ryu_apps.gateway.flowtable import FlowTableModel
from ryu_apps.gateway.rules import (CONTROLLER_METER, FlowRule, L2Learning, MeterRule,
                                    ReadRequest, session_cookie)
from tests.unit.test_gateway_engine import (LAN, WAN, FakeClassifier, both_ways,
                                            policy_enforcer, run_session)
from classifier.preprocess import Preprocess

LABELS = ["voip", "streaming", "p2p", "bulk", "web"]


def _engine(clf):
    return GatewayEngine(Preprocess(repr="packet1480"), clf, policy_enforcer(), wan_port=WAN,
                         mirror_max_packets=8, clock=lambda: 0.0, packet_in_rate=500,
                         packet_in_burst=100)


def _learn(sw):
    l2 = L2Learning()
    for port, mac in ((LAN, "02:00:00:00:00:02"), (WAN, "02:00:00:00:00:01")):
        l2.packet(1, port, mac, "ff:ff:ff:ff:ff:ff")
    sw.apply(l2.packet(1, LAN, "02:00:00:00:00:02", "02:00:00:00:00:01")[1]
             + l2.packet(1, WAN, "02:00:00:00:00:01", "02:00:00:00:00:02")[1])


def _meters(sw):
    return [MeterRule(m.meter_id, m.rate_kbps, m.burst_kb, pktps=m.pktps)
            for m in sw.meters.values()]


def _answer(eng, sw, msgs, labels=LABELS):
    """The switch answers the read-back requests among ``msgs`` (one reply each)."""
    out = []
    for r in msgs:
        if isinstance(r, ReadRequest) and r.what in ("flows", "meters"):
            items = sw.flows() if r.what == "flows" else _meters(sw)
            out += eng.readback_reply(r.what, r.xid, items, False, labels)
    return out


def test_packet_in_meter_installed_on_every_connect():
    eng = _engine(FakeClassifier())
    sw = FlowTableModel(ports=[LAN, WAN])
    sw.apply(eng.switch_connected(fresh=True))
    m = sw.meters[CONTROLLER_METER]
    assert m.pktps and m.rate_kbps == 500 and m.burst_kb == 100
    sw.apply(eng.switch_connected(fresh=False))          # reconnect: delete + add, no error
    assert sw.meters[CONTROLLER_METER].rate_kbps == 500
    eng.configure(packet_in_rate=0)
    sw.apply(eng.switch_connected(fresh=False))
    assert CONTROLLER_METER not in sw.meters


def test_restart_relearns_sessions_and_meters_and_removes_stale():
    clf = FakeClassifier()
    old = _engine(clf)
    sw = FlowTableModel(ports=[LAN, WAN, 3])
    sw.apply(old.switch_connected(fresh=True))
    _learn(sw)
    for label, proto, sport, dport in (("voip", 6, 40000, 443), ("streaming", 17, 5000, 6000),
                                       ("streaming", 17, 5001, 6000), ("p2p", 6, 41000, 6881),
                                       ("bulk", 6, 7000, 80)):
        clf.label = label
        run_session(old, sw, proto=proto, sport=sport, dport=dport)
    before = {s["client_port"]: (s["class"], s["meter_id"], s["id"]) for s in old.sessions()}
    meters_before = dict(sw.meters)
    # a rule and a meter nobody knows (left by some earlier run / another tool)
    sw.apply([MeterRule(77, 1234, None),
              FlowRule(0, 100, {"eth_type": 0x0800, "ip_proto": 17, "udp_dst": 9},
                       goto=1, meter=77, cookie=0x1234)])
    sw.apply([MeterRule(99, 100, None)])

    # --- the app restarts: a new engine, the same switch ---------------------------
    new = _engine(FakeClassifier("streaming"))
    msgs = new.switch_connected(fresh=True, readback=True)
    assert not any(getattr(m, "command", "") == "delete_all" for m in msgs)
    sw.apply(msgs)
    fwd, rev = both_ways(sw)                       # voip session still enforced meanwhile
    assert fwd.dscp == 46 and not fwd.mirrored and rev.outputs == [LAN]
    # classification waits for the read-back (no meter id may be handed out yet)
    run_session(new, sw, proto=17, sport=5002, dport=6000)
    assert new.restoring and len(new.sessions()) == 1 and new.sessions()[0]["state"] == "pending"

    learnt_l2 = L2Learning()
    assert learnt_l2.relearn(1, sw.flows()) == 2
    out = _answer(new, sw, msgs)
    assert not new.restoring
    assert new.l2.tables[new.dp_id] == learnt_l2.tables[1]
    sw.apply(out)
    after = {s["client_port"]: (s["class"], s["meter_id"], s["id"]) for s in new.sessions()}
    for port, v in before.items():
        assert after[port] == v, (port, after)
    assert all(s["reason"] == "restored" for s in new.sessions() if s["client_port"] in before)
    # the waiting streaming session reused the class meter: no new meter
    s_new = [s for s in new.sessions() if s["client_port"] == 5002][0]
    assert s_new["class"] == "streaming" and s_new["meter_id"] == before[5000][1]
    assert s_new["id"] > max(v[2] for v in before.values())
    # stale rule and unused meters gone; every other meter exactly as before
    assert 77 not in sw.meters and 99 not in sw.meters
    assert not [r for r in sw.flows(0) if r.cookie == 0x1234]
    assert {k: (m.rate_kbps, m.burst_kb) for k, m in sw.meters.items()} == \
        {k: (m.rate_kbps, m.burst_kb) for k, m in meters_before.items()}
    assert new.counters["restored"] == 5 and new.counters["stale_flows"] == 1
    assert new.counters["stale_meters"] == 2
    # restored sessions end normally: flow-removed frees them and their session meter
    bulk = [s for s in new.sessions() if s["client_port"] == 7000][0]
    sw.remove_cookie(session_cookie(bulk["id"], 0))
    sw.remove_cookie(session_cookie(bulk["id"], 1))
    new.flow_removed(session_cookie(bulk["id"], 0))
    rel = new.flow_removed(session_cookie(bulk["id"], 1))
    assert [(m.command, m.meter_id) for m in rel] == [("delete", bulk["meter_id"])]


def test_rule_unknown_to_the_policy_is_kept_as_restored():
    clf = FakeClassifier("voip")
    old = _engine(clf)
    sw = FlowTableModel(ports=[LAN, WAN])
    sw.apply(old.switch_connected(fresh=True))
    _learn(sw)
    run_session(old, sw)
    # the new process runs another policy: voip is no longer EF
    from tests.unit.test_gateway_engine import POLICY
    new = GatewayEngine(Preprocess(repr="packet1480"), clf,
                        policy_enforcer(POLICY.replace("voip: {dscp: EF", "voip: {dscp: CS4")),
                        wan_port=WAN, clock=lambda: 0.0)
    msgs = new.switch_connected(fresh=True, readback=True)
    sw.apply(msgs)
    sw.apply(_answer(new, sw, msgs))
    (s,) = new.sessions()
    assert s["class"] == "restored" and s["dscp"] == 46 and s["action"] == "allow"
    assert both_ways(sw)[0].dscp == 46


def _restarted(label="voip"):
    """An old engine left one enforced session on the switch; a new engine connects
    fresh with read-back. Returns (new engine, switch, the read-back requests)."""
    clf = FakeClassifier(label)
    old = _engine(clf)
    sw = FlowTableModel(ports=[LAN, WAN])
    sw.apply(old.switch_connected(fresh=True))
    _learn(sw)
    run_session(old, sw)
    new = _engine(FakeClassifier("streaming"))
    msgs = new.switch_connected(fresh=True, readback=True)
    sw.apply(msgs)
    assert new.restoring
    return new, sw, msgs


def _new_session(eng, sw, sport=5002, now=0.0):
    """A new UDP session; returns what flush() decides for it."""
    from tests.unit.test_gateway_engine import frame
    eng.mirror_packet(LAN, frame(proto=17, sport=sport, dport=6000, payload=b"x" * 300),
                      now=now)
    return eng.flush(now)


def test_readback_in_several_parts_and_other_replies_ignored():
    new, sw, msgs = _restarted()
    reqs = {r.what: r for r in msgs if isinstance(r, ReadRequest)}
    flows = sw.flows()
    assert new.readback_reply("flows", reqs["flows"].xid + 99, flows, False) == []
    assert new.readback_reply("flows", reqs["flows"].xid, flows[:3], True) == []
    assert new.readback_reply("flows", reqs["flows"].xid, flows[3:], False) == []
    assert new.restoring                          # meters still to come
    sw.apply(new.readback_reply("meters", reqs["meters"].xid, _meters(sw), False, LABELS))
    assert not new.restoring and new.counters["restored"] == 1
    assert [s["class"] for s in new.sessions()] == ["voip"]


def test_readback_timeout_clears_the_switch_and_classifies_again():
    new, sw, msgs = _restarted()
    assert new.tick(now=1.0) == [] and new.restoring
    out = new.tick(now=5.0)                       # restore_timeout 5 s
    assert not new.restoring and new.faults.count("restore") == 1
    assert any(getattr(m, "command", "") == "delete_all" for m in out)
    sw.apply(out)
    assert not [r for r in sw.flows(0) if r.priority == 100]
    assert any(getattr(m, "meter_id", None) for m in _new_session(new, sw, now=6.0))
    assert new.sessions()[-1]["state"] == "enforced"
    # a late reply to the abandoned read-back changes nothing
    reqs = {r.what: r for r in msgs if isinstance(r, ReadRequest)}
    assert new.readback_reply("flows", reqs["flows"].xid, [], False) == []


def test_switch_drops_during_readback_then_reconnects():
    new, sw, msgs = _restarted()
    new.switch_disconnected()                     # replies to `msgs` will never come
    again = new.switch_connected(fresh=False)     # the adapter's reconnect: not fresh
    assert new.restoring
    assert not any(getattr(m, "command", "") == "delete_all" for m in again)
    sw.apply(again)
    old = {r.what: r.xid for r in msgs if isinstance(r, ReadRequest) and r.xid}
    assert new.readback_reply("flows", old["flows"], sw.flows(), False) == []
    sw.apply(_answer(new, sw, again))
    assert not new.restoring and [s["class"] for s in new.sessions()] == ["voip"]
    decided = _new_session(new, sw)               # restoring did not stick
    assert decided and new.sessions()[-1]["state"] == "enforced"


def test_switch_away_past_the_deadline_is_cleared_when_it_returns():
    new, sw, msgs = _restarted()
    new.switch_disconnected()
    assert new.tick(now=6.0) == [] and not new.restoring   # nothing to send it to
    back = new.switch_connected(fresh=False, now=7.0)
    assert any(getattr(m, "command", "") == "delete_all" for m in back)
    assert not any(isinstance(m, ReadRequest) and m.what == "flows" for m in back)
    sw.apply(back)
    assert _new_session(new, sw, now=7.0) and new.sessions()[-1]["state"] == "enforced"


def test_reconnect_before_timeout_restarts_the_deadline():
    new, sw, msgs = _restarted()
    new.switch_disconnected()
    again = new.switch_connected(fresh=False, now=4.0)
    assert new.tick(now=6.0) == [] and new.restoring       # new deadline: 4 + 5
    sw.apply(_answer(new, sw, again))
    assert not new.restoring and new.faults.count("restore") == 0


# ---- issue 16, items 4 and 5: restore that never sticks, sessions that keep their device --
def _left_behind(policy, sessions, *, sw=None, clock=0.0):
    """An old engine under ``policy`` enforced ``sessions`` ((label, proto, sport, dport)).
    Returns the switch it left behind."""
    from tests.unit.test_gateway_engine import POLICY
    clf = FakeClassifier()
    old = GatewayEngine(Preprocess(repr="packet1480"), clf, policy_enforcer(policy or POLICY),
                        wan_port=WAN, mirror_max_packets=8, clock=lambda: clock)
    sw = sw or FlowTableModel(ports=[LAN, WAN])
    sw.apply(old.switch_connected(fresh=True))
    _learn(sw)
    for label, proto, sport, dport in sessions:
        clf.label = label
        run_session(old, sw, proto=proto, sport=sport, dport=dport)
    return old, sw


def _restart(policy=None):
    from tests.unit.test_gateway_engine import POLICY
    new = GatewayEngine(Preprocess(repr="packet1480"), FakeClassifier("voip"),
                        policy_enforcer(policy or POLICY), wan_port=WAN, mirror_max_packets=8,
                        clock=lambda: 0.0)
    return new


def test_reconnect_before_timeout_keeps_drop_rules_as_drops():
    _old, sw = _left_behind(None, [("p2p", 6, 41000, 6881), ("voip", 6, 40000, 443)])
    assert both_ways(sw, 6, 41000, 6881)[0].dropped
    new = _restart()
    msgs = new.switch_connected(fresh=True, readback=True, now=0.0)
    sw.apply(msgs)
    new.switch_disconnected()
    again = new.switch_connected(fresh=False, now=2.0)
    sw.apply(again)
    assert both_ways(sw, 6, 41000, 6881)[0].dropped           # nothing cleared meanwhile
    assert new.tick(now=6.0) == [] and new.restoring          # new deadline 2 + 5
    sw.apply(_answer(new, sw, again))
    assert not new.restoring
    by_port = {s["client_port"]: s for s in new.sessions()}
    assert by_port[41000]["class"] == "p2p" and by_port[41000]["action"] == "drop"
    fwd, rev = both_ways(sw, 6, 41000, 6881)
    assert fwd.dropped and rev.dropped
    # a policy reload re-derives the drop (the session is a p2p session again, not "restored")
    assert new.set_enforcer(policy_enforcer()) == []


def test_restoring_never_outlives_its_deadline_across_reconnects():
    _old, sw = _left_behind(None, [("voip", 6, 40000, 443)])
    new = _restart()
    sw.apply(new.switch_connected(fresh=True, readback=True, now=0.0))
    for t in (1.0, 2.0, 3.0):                     # flapping: each reconnect asks again
        new.switch_disconnected()
        sw.apply(new.switch_connected(fresh=False, now=t))
        assert new.restoring
    assert new.tick(now=8.1) and not new.restoring          # deadline of the last ask
    new.switch_disconnected()
    sw.apply(new.switch_connected(fresh=False, now=9.0))
    assert not new.restoring                       # a reconnect does not bring it back
    assert _new_session(new, sw, now=9.0) and new.sessions()[-1]["state"] == "enforced"


def test_mac_only_device_entry_is_recognised_on_restore():
    from tests.unit.test_gateway_engine import MAC_C, POLICY
    policy = POLICY + f"""devices:
  - name: monitor
    mac: "{MAC_C.upper()}"
    all: {{dscp: CS5}}
"""
    old, sw = _left_behind(policy, [("voip", 6, 40000, 443)])
    assert old.sessions()[0]["dscp"] == 40
    new = _restart(policy)
    msgs = new.switch_connected(fresh=True, readback=True)
    sw.apply(msgs)
    sw.apply(_answer(new, sw, msgs))
    (s,) = new.sessions()
    assert s["class"] == "voip" and s["dscp"] == 40 and s["device_mac"] == MAC_C
    # ... so a policy reload still reaches it
    changed = policy.replace("all: {dscp: CS5}", "all: {dscp: CS6}")
    sw.apply(new.set_enforcer(policy_enforcer(changed)))
    assert new.sessions()[0]["dscp"] == 48 and both_ways(sw)[0].dscp == 48


def test_restored_session_keeps_device_side_mac_and_counters():
    from tests.unit.test_gateway_engine import IP_C, MAC_C, frame, pkt_fields
    old, sw = _left_behind(None, [])
    # a session opened from the WAN side: the device (LAN) is its server
    f = frame(IP_S_, IP_C, 6000, 5000, 17, b"x" * 300, smac="02:00:00:00:00:01", dmac=MAC_C)
    old.configure(mirror_max_packets=1)
    assert sw.process(pkt_fields(IP_S_, IP_C, 6000, 5000, 17, in_port=WAN,
                                 smac="02:00:00:00:00:01", dmac=MAC_C)).mirrored
    old.mirror_packet(WAN, f, now=0.0)
    sw.apply(old.flush(0.0))
    (o,) = old.sessions()
    assert o["device_ip"] == IP_C and o["client"] == IP_S_
    flows = sw.flows()
    for r in flows:                                # the switch counted some traffic
        if r.priority == 100:
            r.packet_count, r.byte_count = 10, 4000
    new = _restart()
    msgs = new.switch_connected(fresh=True, readback=True)
    sw.apply(msgs)
    reqs = {r.what: r for r in msgs if isinstance(r, ReadRequest)}
    new.readback_reply("flows", reqs["flows"].xid, flows, False, LABELS)
    sw.apply(new.readback_reply("meters", reqs["meters"].xid, _meters(sw), False, LABELS))
    (s,) = new.sessions()
    assert s["device_ip"] == IP_C and s["device_mac"] == MAC_C and s["client"] == IP_S_
    assert s["packets"] == 20 and s["bytes"] == 8000
    assert s["class"] == o["class"] and s["id"] == o["id"]


IP_S_ = "10.0.0.1"
