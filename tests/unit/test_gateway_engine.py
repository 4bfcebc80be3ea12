"""Pure gateway logic: session table, decision engine, rule builder, meters, run
through the in-memory flow-table model (behaviour, not message bytes)."""
from __future__ import annotations

import functools
import logging
import struct

import pytest

from classifier.preprocess import Preprocess
from policies.enforcement import enforcement_for
from policies.loader import parse_policy
from ryu_apps.gateway.engine import GatewayEngine
from ryu_apps.gateway.flowtable import FlowTableModel
from ryu_apps.gateway.rules import (ETH_IPV4, FORWARD_TABLE, OFPP_FLOOD, L2Learning,
                                    MeterRule, session_cookie)

POLICY = """
version: 1
default: {action: allow, dscp: 0}
classes:
  voip: {dscp: EF, idle_timeout: 30}
  streaming: {dscp: AF41, rate_limit: {kbps: 5000, burst_kb: 500, scope: class}}
  p2p: {action: drop}
  bulk: {dscp: CS1, rate_limit: {kbps: 1000, scope: session}}
wan:
  uplink_kbps: 20000
  default_class: besteffort
  classes:
    - {name: realtime, dscp: [EF], rate_kbps: 4000, prio: 0}
    - {name: besteffort, dscp: [CS0, AF41, CS1], rate_kbps: 16000, prio: 3}
"""

MAC_C, MAC_S = "02:00:00:00:00:02", "02:00:00:00:00:01"
IP_C, IP_S = "10.0.0.2", "10.0.0.1"
LAN, WAN = 1, 2


def _mac(m: str) -> bytes:
    return bytes(int(x, 16) for x in m.split(":"))


def _ip4(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def frame(src=IP_C, dst=IP_S, sport=40000, dport=443, proto=6, payload=b"", flags=0x18,
          seq=1, smac=MAC_C, dmac=MAC_S) -> bytes:
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    total = 20 + len(l4) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, proto, 0, _ip4(src), _ip4(dst))
    return _mac(dmac) + _mac(smac) + struct.pack("!H", 0x0800) + ip + l4 + payload


def pkt_fields(src=IP_C, dst=IP_S, sport=40000, dport=443, proto=6, in_port=LAN,
               smac=MAC_C, dmac=MAC_S) -> dict:
    l4 = "tcp" if proto == 6 else "udp"
    return {"in_port": in_port, "eth_src": smac, "eth_dst": dmac, "eth_type": ETH_IPV4,
            "ip_proto": proto, "ipv4_src": src, "ipv4_dst": dst, f"{l4}_src": sport,
            f"{l4}_dst": dport, "ip_dscp": 0}


class FakeClassifier:
    """Returns the label set by the test for every sample; counts batches."""

    def __init__(self, label="voip", conf=0.9):
        self.label, self.conf = label, conf
        self.score = None        # set: (label, confidence, OOD score) as Bundle.classify_scored
        self.batches: list[int] = []

    def __call__(self, batch):
        self.batches.append(len(batch))
        if self.label == "raise":
            raise RuntimeError("model exploded")
        if self.score is not None:
            return [(self.label, self.conf, self.score)] * len(batch)
        return [(self.label, self.conf)] * len(batch)


def policy_enforcer(text=POLICY):
    return functools.partial(enforcement_for, parse_policy(text))


@pytest.fixture
def gw():
    clf = FakeClassifier()
    eng = GatewayEngine(Preprocess(repr="packet1480"), clf, policy_enforcer(), wan_port=WAN,
                        mirror_max_packets=8, mirror_max_seconds=2.0, clock=lambda: 0.0)
    return eng, connected_switch(eng), clf


def connected_switch(eng):
    """A switch model connected to ``eng``, its L2 forwarding between the two hosts learnt
    (the forwarding half is tested separately)."""
    sw = FlowTableModel(ports=[LAN, WAN, 3])
    sw.apply(eng.switch_connected(fresh=True))
    l2 = L2Learning()
    for port, mac in ((LAN, MAC_C), (WAN, MAC_S)):
        l2.packet(1, port, mac, "ff:ff:ff:ff:ff:ff")
    sw.apply(l2.packet(1, LAN, MAC_C, MAC_S)[1] + l2.packet(1, WAN, MAC_S, MAC_C)[1])
    return sw


def run_session(eng, sw, *, proto=6, sport=40000, dport=443, payload=b"x" * 200, t=0.0):
    """Handshake (TCP) then one payload packet; feeds mirrored copies to the engine."""
    msgs = []
    seq = [(dict(flags=0x02), b""), (dict(flags=0x12, rev=True), b""), (dict(flags=0x10), b""),
           (dict(flags=0x18), payload)] if proto == 6 else [({}, payload)]
    for opts, pl in seq:
        rev = opts.pop("rev", False)
        if rev:
            f = frame(IP_S, IP_C, dport, sport, proto, pl, smac=MAC_S, dmac=MAC_C, **opts)
            fields = pkt_fields(IP_S, IP_C, dport, sport, proto, in_port=WAN, smac=MAC_S,
                                dmac=MAC_C)
            port = WAN
        else:
            f = frame(IP_C, IP_S, sport, dport, proto, pl, **opts)
            fields = pkt_fields(IP_C, IP_S, sport, dport, proto)
            port = LAN
        v = sw.process(fields)
        if v.mirrored:
            # Mirroring never holds the packet: it is forwarded at the same time.
            assert v.outputs, "a mirrored packet must still be forwarded"
            msgs += eng.mirror_packet(port, f, now=t)
    msgs += eng.flush(now=t + 0.001)
    sw.apply(msgs)
    return msgs


def both_ways(sw, proto=6, sport=40000, dport=443):
    fwd = sw.process(pkt_fields(IP_C, IP_S, sport, dport, proto))
    rev = sw.process(pkt_fields(IP_S, IP_C, dport, sport, proto, in_port=WAN, smac=MAC_S,
                                dmac=MAC_C))
    return fwd, rev


def test_new_tcp_session_mirrored_classified_enforced_both_directions(gw):
    eng, sw, clf = gw
    before = sw.process(pkt_fields())
    assert before.mirrored and before.outputs == [WAN]
    run_session(eng, sw)
    assert clf.batches == [1]
    (s,) = eng.sessions()
    assert s["class"] == "voip" and s["action"] == "allow" and s["dscp"] == 46
    assert s["state"] == "enforced" and s["device_mac"] == MAC_C and s["proto"] == "tcp"
    fwd, rev = both_ways(sw)
    for v, out in ((fwd, WAN), (rev, LAN)):
        assert not v.mirrored, "after classification the session is no longer mirrored"
        assert v.outputs == [out] and v.dscp == 46 and v.meters == []
        assert v.rules[0].idle_timeout == 30 and v.rules[0].send_flow_rem
    # Another session is still mirrored.
    assert sw.process(pkt_fields(sport=40001)).mirrored


def test_new_udp_session_metered_both_directions(gw):
    eng, sw, clf = gw
    clf.label = "streaming"
    run_session(eng, sw, proto=17, sport=5000, dport=6000)
    fwd, rev = both_ways(sw, proto=17, sport=5000, dport=6000)
    assert fwd.meters == rev.meters and len(fwd.meters) == 1
    meter = sw.meters[fwd.meters[0]]
    assert (meter.rate_kbps, meter.burst_kb) == (5000, 500)
    assert fwd.dscp == rev.dscp == 34 and fwd.outputs == [WAN] and rev.outputs == [LAN]


def test_dropped_class_is_blocked_both_ways(gw):
    eng, sw, clf = gw
    clf.label = "p2p"
    run_session(eng, sw, sport=41000, dport=6881)
    fwd, rev = both_ways(sw, sport=41000, dport=6881)
    assert fwd.dropped and rev.dropped and not fwd.mirrored and not rev.mirrored
    assert eng.sessions()[0]["action"] == "drop"


def test_meters_created_once_per_class_and_reused(gw):
    eng, sw, clf = gw
    clf.label = "streaming"
    for i in range(3):
        run_session(eng, sw, proto=17, sport=5000 + i, dport=6000)
    ids = {both_ways(sw, 17, 5000 + i, 6000)[0].meters[0] for i in range(3)}
    assert len(ids) == 1 and sw.meter_adds == 1
    # Session-scope limits get one meter each, freed with the session.
    clf.label = "bulk"
    for i in range(2):
        run_session(eng, sw, sport=7000 + i, dport=80)
    bulk_ids = {both_ways(sw, 6, 7000 + i, 80)[0].meters[0] for i in range(2)}
    assert len(bulk_ids) == 2 and sw.meter_adds == 3
    sid = next(s["id"] for s in eng.sessions() if s["client_port"] == 7000)
    msgs = eng.flow_removed(session_cookie(sid, 0), 10, 1000)
    msgs += eng.flow_removed(session_cookie(sid, 1), 5, 500)
    assert [m.command for m in msgs] == ["delete"] and isinstance(msgs[0], MeterRule)
    sw.apply(msgs)
    assert len(sw.meters) == 2


def test_unknown_falls_back_to_default_policy(gw):
    eng, sw, clf = gw
    clf.label, clf.conf = "unknown", 0.3       # the bundle's classify: below threshold
    run_session(eng, sw)
    (s,) = eng.sessions()
    assert s["class"] == "unknown" and s["policy_entry"] == "default" and s["action"] == "allow"
    fwd, _ = both_ways(sw)
    assert fwd.outputs == [WAN] and fwd.dscp == 0 and not fwd.mirrored


def test_classifier_error_fails_open_and_malformed_packets_are_counted(gw, caplog):
    eng, sw, clf = gw
    clf.label = "raise"
    assert eng.mirror_packet(LAN, b"\x00" * 5, now=0) == []
    assert eng.mirror_packet(LAN, frame()[:30], now=0) == []
    with caplog.at_level(logging.ERROR):
        run_session(eng, sw)
    (s,) = eng.sessions()
    assert s["class"] == "unknown" and s["reason"] == "error"
    assert eng.counters["errors"] >= 1 and eng.counters["malformed"] == 2
    assert both_ways(sw)[0].outputs == [WAN]


def test_batches_sessions_ready_together(gw):
    eng, sw, clf = gw
    msgs = []
    for i in range(5):
        msgs += eng.mirror_packet(LAN, frame(sport=30000 + i, proto=17, payload=b"a" * 50), 0)
    assert eng.has_pending()
    msgs += eng.flush(0.001)
    sw.apply(msgs)
    assert clf.batches == [5] and len(eng.sessions()) == 5


def test_mirror_caps_packets_and_time(gw):
    eng, sw, clf = gw
    eng.set_model(Preprocess(repr="session784"), clf)   # needs 784 bytes or 10 packets
    eng.configure(mirror_max_packets=3)
    for i in range(3):
        eng.mirror_packet(LAN, frame(proto=17, sport=1111, payload=b"b" * 20), now=0)
    sw.apply(eng.flush(0.01))
    (s,) = eng.sessions()
    assert s["state"] == "enforced" and s["reason"] == "cap" and s["mirrored_packets"] == 3
    # A session that never sends payload: the time cap marks it unknown (no data).
    eng.mirror_packet(LAN, frame(sport=2222, flags=0x02), now=0)
    assert eng.tick(now=1.0) == []
    sw.apply(eng.tick(now=2.5))
    s2 = [s for s in eng.sessions() if s["client_port"] == 2222][0]
    assert s2["class"] == "unknown" and s2["reason"] == "no-data"
    assert not sw.process(pkt_fields(sport=2222)).mirrored


def test_policy_reload_updates_existing_sessions(gw):
    eng, sw, clf = gw
    run_session(eng, sw)                                  # voip, EF
    clf.label = "streaming"
    run_session(eng, sw, proto=17, sport=5000, dport=6000)
    old_meter = both_ways(sw, 17, 5000, 6000)[0].meters[0]
    new = POLICY.replace("voip: {dscp: EF, idle_timeout: 30}", "voip: {action: drop}") \
                .replace("kbps: 5000, burst_kb: 500", "kbps: 3000, burst_kb: 300")
    msgs = eng.set_enforcer(policy_enforcer(new))
    sw.apply(msgs)
    fwd, rev = both_ways(sw)
    assert fwd.dropped and rev.dropped
    ufwd, urev = both_ways(sw, 17, 5000, 6000)
    assert ufwd.meters == urev.meters and ufwd.meters[0] != old_meter
    assert sw.meters[ufwd.meters[0]].rate_kbps == 3000 and old_meter not in sw.meters
    assert ufwd.outputs == [WAN]
    # Unchanged policy: nothing to send.
    assert eng.set_enforcer(policy_enforcer(new)) == []


def test_expiry_frees_state_and_table_is_bounded(gw):
    eng, sw, clf = gw
    run_session(eng, sw)
    sid = eng.sessions()[0]["id"]
    assert eng.flow_removed(session_cookie(sid, 1), 3, 300) == []
    assert len(eng.table) == 1      # the other direction still lives
    # Traffic in the expired direction comes back: its rule is re-installed.
    sw.remove_cookie(session_cookie(sid, 1))
    v = sw.process(pkt_fields(IP_S, IP_C, 443, 40000, in_port=WAN, smac=MAC_S, dmac=MAC_C))
    assert v.mirrored
    msgs = eng.mirror_packet(WAN, frame(IP_S, IP_C, 443, 40000, smac=MAC_S, dmac=MAC_C), 1)
    assert len(msgs) == 1 and msgs[0].cookie == session_cookie(sid, 1)
    eng.flow_removed(session_cookie(sid, 1), 1, 100)
    eng.flow_removed(session_cookie(sid, 0), 4, 400)
    assert len(eng.table) == 0
    st = eng.stats()["classes"]["voip"]
    assert st["sessions"] == 1 and st["active"] == 0 and st["packets"] == 8
    # Bounded: the oldest session is evicted.
    eng.table.max_sessions = 3
    for i in range(5):
        eng.mirror_packet(LAN, frame(sport=50000 + i, flags=0x02), now=2)
    assert len(eng.table) == 3 and eng.table.evicted == 2


def test_reconnect_reinstalls_pipeline_meters_and_sessions(gw):
    eng, sw, clf = gw
    clf.label = "streaming"
    run_session(eng, sw, proto=17, sport=5000, dport=6000)
    fresh = FlowTableModel(ports=[LAN, WAN, 3])
    fresh.apply(eng.switch_connected(fresh=False))
    fwd = fresh.process(pkt_fields(IP_C, IP_S, 5000, 6000, 17))
    assert fwd.meters and fwd.dscp == 34 and not fwd.mirrored
    assert fresh.lookup(FORWARD_TABLE, {}) is not None


def test_chatter_and_non_ip_are_forwarded_without_mirroring(gw):
    eng, sw, clf = gw
    dns = sw.process(pkt_fields(sport=33333, dport=53, proto=17))
    assert not dns.mirrored and dns.outputs == [WAN]
    arp = sw.process({"in_port": LAN, "eth_src": MAC_C, "eth_dst": MAC_S, "eth_type": 0x0806})
    assert not arp.mirrored and arp.outputs == [WAN]


def test_l2_learning_floods_then_forwards():
    l2 = L2Learning()
    out, rules = l2.packet(1, 1, "02:00:00:00:00:01", "02:00:00:00:00:02")
    assert out == OFPP_FLOOD and rules == []
    out, rules = l2.packet(1, 2, "02:00:00:00:00:02", "02:00:00:00:00:01")
    assert out == 1 and rules[0].match == {"in_port": 2, "eth_dst": "02:00:00:00:00:01"}


def test_decision_log_line(gw, caplog):
    eng, sw, clf = gw
    with caplog.at_level(logging.INFO, logger="egw.engine"):
        run_session(eng, sw)
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("decision ")]
    assert line and '"class": "voip"' in line[0] and '"action": "allow"' in line[0]
    assert '"confidence": 0.9' in line[0] and '"session": ' in line[0]


def test_policy_reload_moves_session_meters_without_reusing_a_freed_id(gw):
    """Regression (found in the smart-home emulation): with several session-scope meters,
    an id freed by one session was re-used by the next in the same update, then deleted
    after its re-use, which (OpenFlow) deleted the flows using it: the session went
    unmetered."""
    eng, sw, clf = gw
    clf.label = "bulk"
    ports = [(17, 5000 + i, 6000) for i in range(3)]
    for proto, sport, dport in ports:
        run_session(eng, sw, proto=proto, sport=sport, dport=dport)
    before = {p: both_ways(sw, *p)[0].meters[0] for p in ports}
    assert len(set(before.values())) == 3
    msgs = eng.set_enforcer(policy_enforcer(POLICY.replace("kbps: 1000, scope: session",
                                                           "kbps: 500, scope: session")))
    sw.apply(msgs)   # the in-memory table raises on adding a meter id that still exists
    for p in ports:
        fwd, rev = both_ways(sw, *p)
        assert fwd.meters and fwd.meters == rev.meters, p
        assert sw.meters[fwd.meters[0]].rate_kbps == 500
        assert fwd.outputs == [WAN]
    assert len(sw.meters) == 3


def test_min_confidence_demotes_an_unsure_label_to_the_default_entry(gw):
    eng, sw, clf = gw
    eng.set_enforcer(policy_enforcer(POLICY.replace("voip: {dscp: EF, idle_timeout: 30}",
                                                    "voip: {dscp: EF, min_confidence: 0.6}")))
    clf.conf = 0.45
    run_session(eng, sw, sport=41000)
    s = next(v for v in eng.sessions() if v["client_port"] == 41000)
    assert (s["class"], s["policy_entry"], s["dscp"]) == ("voip", "default", 0)
    clf.conf = 0.9
    run_session(eng, sw, sport=41001)
    s = next(v for v in eng.sessions() if v["client_port"] == 41001)
    assert (s["class"], s["policy_entry"], s["dscp"]) == ("voip", "voip", 46)
    fwd, _ = both_ways(sw, sport=41001)
    assert fwd.dscp == 46


def _scraped(text: str, name: str, dp: str, **labels) -> float:
    """The sum of a metric's samples in a /metrics page for one switch and label subset."""
    from prometheus_client.parser import text_string_to_metric_families
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and s.labels.get("dp_id") == dp
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_rest_stats_and_prometheus_are_one_store():
    """/egw/stats reads the counts from the Prometheus series: two engines (two switches)
    share one registry and each sees only its own dp_id; what a scrape shows, REST shows."""
    from ryu_apps.gateway.metrics import Metrics
    metrics, clf = Metrics(), FakeClassifier()
    engines = {}
    for dp, n in ((1, 2), (2, 1)):
        eng = GatewayEngine(Preprocess(repr="packet1480"), clf, policy_enforcer(),
                            wan_port=WAN, mirror_max_packets=8, clock=lambda: 0.0,
                            metrics=metrics, dp_id=dp)
        sw = connected_switch(eng)
        for i in range(n):
            run_session(eng, sw, sport=41000 + i)
        eng.mirror_packet(LAN, b"\x00" * 5, now=0)          # malformed
        engines[dp] = eng
    sid = engines[1].sessions()[0]["id"]
    engines[1].flow_removed(session_cookie(sid, 0), 3, 300)
    engines[1].flow_removed(session_cookie(sid, 1), 5, 500)
    page = metrics.render().decode()
    for dp, eng in engines.items():
        label = f"{dp:016x}"
        st = eng.stats()
        c = st["counters"]
        assert c["classified"] == _scraped(page, "egw_sessions_classified_total", label)
        assert c["classified"] == len(eng.sessions()) + (dp == 1)
        assert c["mirrored"] == _scraped(page, "egw_packet_ins_total", label, kind="mirror")
        assert c["malformed"] == 1
        assert c["packets"] == _scraped(page, "egw_packet_ins_total", label) - c["forwarded"]
        voip = st["classes"]["voip"]
        assert voip["sessions"] == _scraped(page, "egw_class_sessions_total", label, cls="voip")
        assert voip["active"] == _scraped(page, "egw_class_sessions_active", label, cls="voip")
    assert engines[1].stats()["classes"]["voip"]["packets"] == 8     # the finished session
    assert _scraped(page, "egw_class_packets_total", "0000000000000001", cls="voip") == 8
    assert engines[2].stats()["classes"]["voip"]["sessions"] == 1


def test_unknown_sessions_get_the_policys_unknown_entry_and_show_as_unknown(gw):
    eng, sw, clf = gw
    eng.set_enforcer(policy_enforcer(POLICY.replace(
        "classes:\n", "unknown: {dscp: CS1, rate_limit: {kbps: 2000, scope: session}}\nclasses:\n", 1)))
    clf.label, clf.conf, clf.score = "unknown", 0.8, 2.5   # out of distribution by its OOD score
    run_session(eng, sw, sport=42000)
    clf.label, clf.score = "voip", 0.7
    run_session(eng, sw, sport=42001)
    s = {v["client_port"]: v for v in eng.sessions()}
    assert (s[42000]["ood_score"], s[42001]["ood_score"]) == (2.5, 0.7)
    assert (s[42000]["class"], s[42000]["policy_entry"], s[42000]["dscp"]) == ("unknown", "unknown", 8)
    assert (s[42001]["class"], s[42001]["policy_entry"], s[42001]["dscp"]) == ("voip", "voip", 46)
    fwd, rev = both_ways(sw, sport=42000)
    assert fwd.dscp == rev.dscp == 8 and fwd.outputs == [WAN] and len(fwd.meters) == 1
    assert sw.meters[fwd.meters[0]].rate_kbps == 2000
    counted = {line.split('cls="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
               for line in eng.metrics.render().decode().splitlines()
               if line.startswith("egw_sessions_classified_total")}
    assert counted == {"unknown": "1.0", "voip": "1.0"}
