"""One device's flood of new sessions must not blind classification for the others.

A LAN device (port + MAC) that opens new sessions faster than its quota is overloaded:
the engine installs its overload rules and the switch stops copying its packets to the
controller (forwarded untracked, or dropped where the policy says ``on_overload: drop``).
Asserted on the in-memory flow table: the flooder's packets stop reaching the engine,
another device's voip session is still mirrored and marked EF, its p2p session is still
dropped, the flooder's already classified session keeps its rule, its DNS still passes.
"""
from __future__ import annotations

import numpy as np
import pytest

from classifier.preprocess import Preprocess
from policies import PolicyEnforcer, overload_action
from policies.loader import parse_policy
from ryu_apps.gateway.engine import GatewayEngine
from ryu_apps.gateway.flowtable import FlowTableModel
from ryu_apps.gateway.restore import adopt
from ryu_apps.gateway.rules import OVERLOAD_COOKIE, L2Learning

from .test_gateway_engine import frame, pkt_fields

POLICY = """
version: 1
default: {action: allow, dscp: 0}
classes:
  voip: {dscp: EF}
  p2p: {action: drop, on_overload: %s}
wan:
  uplink_kbps: 20000
  default_class: besteffort
  classes:
    - {name: realtime, dscp: [EF], rate_kbps: 4000, prio: 0}
    - {name: besteffort, dscp: [CS0], rate_kbps: 16000, prio: 3}
"""
FLOODER, OTHER, WAN = 1, 3, 2
MAC_F, MAC_O, MAC_W = "02:00:00:00:00:0f", "02:00:00:00:00:0e", "02:00:00:00:00:01"
IP_F, IP_O, IP_W = "10.0.0.15", "10.0.0.14", "10.0.0.1"
PREFIX = {b"VOIP": "voip", b"\x13Bit": "p2p"}


class PrefixClassifier:
    """A stand-in model: the label follows the first payload bytes of the session."""

    def __call__(self, batch):
        out = []
        for x in batch:
            head = bytes(np.round(np.asarray(x).ravel()[:4] * 255).astype(np.uint8))
            out.append((PREFIX.get(head, "web"), 0.9))
        return out


class Home:
    """Engine + switch model; L2 between the three hosts learnt."""

    def __init__(self, on_overload="forward", rate=10.0):
        self.eng = GatewayEngine(
            Preprocess(repr="packet1480", layers="l7", n_bytes=64, max_packets=1),
            PrefixClassifier(), PolicyEnforcer(parse_policy(POLICY % on_overload)),
            wan_port=WAN, mirror_max_packets=4, device_session_rate=rate,
            device_session_burst=20, overload_seconds=5, clock=lambda: 0.0)
        self.sw = FlowTableModel(ports=[FLOODER, WAN, OTHER])
        self.sw.apply(self.eng.switch_connected(fresh=True))
        l2 = L2Learning()
        hosts = ((FLOODER, MAC_F), (OTHER, MAC_O), (WAN, MAC_W))
        for port, mac in hosts:
            l2.packet(1, port, mac, "ff:ff:ff:ff:ff:ff")
        for port, mac in hosts:
            for _, other in hosts:
                if other != mac:
                    self.sw.apply(l2.packet(1, port, mac, other)[1])
        self.now = 0.0
        self.seen = {FLOODER: 0, OTHER: 0}     # packets the engine got, per device port

    def udp(self, port, mac, ip, sport, payload, dport=9999):
        """One UDP packet from a LAN device to the WAN host; returns the switch's verdict."""
        f = frame(ip, IP_W, sport, dport, 17, payload, smac=mac, dmac=MAC_W)
        fields = pkt_fields(ip, IP_W, sport, dport, 17, in_port=port, smac=mac, dmac=MAC_W)
        v = self.sw.process(fields)
        if v.mirrored:
            self.seen[port] += 1
            self.sw.apply(self.eng.mirror_packet(port, f, self.now))
            self.sw.apply(self.eng.flush(self.now))
        return v

    def flood(self, n, rate=1000.0, start_port=20000):
        outs = 0
        for i in range(n):
            self.now += 1.0 / rate
            outs += bool(self.udp(FLOODER, MAC_F, IP_F, start_port + i, b"flood%05d" % i).outputs)
        return outs


def test_flooder_is_overloaded_and_the_other_device_is_still_classified():
    h = Home("forward")
    # before the flood: the other device's p2p session is classified and dropped
    assert h.udp(OTHER, MAC_O, IP_O, 40001, b"\x13BitTorrent protocol").mirrored
    assert h.udp(OTHER, MAC_O, IP_O, 40001, b"\x13BitTorrent protocol").outputs == []
    # ... and one voip session of the flooder itself
    h.udp(FLOODER, MAC_F, IP_F, 5060, b"VOIP" + bytes(28))
    forwarded = h.flood(2000)                  # 2000 new sessions in 2 s
    assert forwarded == 2000                   # forwarding never held (on_overload: forward)
    # the flooder's copies stopped at its burst: the switch no longer sends them
    assert h.seen[FLOODER] <= 1 + 20 + 1, h.seen
    c = h.eng.counters
    assert c["overload"] == 1 and len(h.eng.quotas.overloaded) == 1
    assert h.eng.stats()["overloaded"][0]["mac"] == MAC_F
    # during the flood, the other device's new voip session is mirrored and marked EF
    v = h.udp(OTHER, MAC_O, IP_O, 40002, b"VOIP" + bytes(28))
    assert v.mirrored
    v = h.udp(OTHER, MAC_O, IP_O, 40002, b"VOIP" + bytes(28))
    assert v.outputs == [WAN] and v.dscp == 46
    assert {s["class"] for s in h.eng.sessions() if s["device_mac"] == MAC_O} == {"p2p", "voip"}
    # its p2p session is still dropped; the flooder's voip session keeps its EF rule
    assert h.udp(OTHER, MAC_O, IP_O, 40001, b"\x13BitTorrent protocol").outputs == []
    v = h.udp(FLOODER, MAC_F, IP_F, 5060, b"VOIP" + bytes(28))
    assert v.outputs == [WAN] and v.dscp == 46 and not v.mirrored


def test_without_a_quota_the_flood_reaches_the_controller():
    """The control for the test above: the same flood with the quota off is copied to
    the controller packet by packet (what the switch's one controller meter then shares
    out among every device)."""
    h = Home("forward", rate=0.0)
    h.flood(500)
    assert h.seen[FLOODER] == 500 and h.eng.counters["overload"] == 0


def test_on_overload_drop_drops_the_flooders_unclassified_sessions_not_its_dns():
    h = Home("drop")
    h.udp(FLOODER, MAC_F, IP_F, 5060, b"VOIP" + bytes(28))
    forwarded = h.flood(500)
    assert forwarded <= 22 and h.seen[FLOODER] <= 22
    assert h.eng.metrics.values("overloads") == {("forward",): 0.0, ("drop",): 1.0}
    dns = h.udp(FLOODER, MAC_F, IP_F, 33333, b"\x12\x34\x01\x00", dport=53)
    assert dns.outputs == [WAN] and not dns.mirrored       # chatter passes, not mirrored
    v = h.udp(FLOODER, MAC_F, IP_F, 5060, b"VOIP" + bytes(28))
    assert v.outputs == [WAN] and v.dscp == 46             # classified before: kept
    # the other device is not affected
    assert h.udp(OTHER, MAC_O, IP_O, 40003, b"hello").mirrored


def test_overload_ends_after_its_time_and_the_device_is_judged_afresh():
    h = Home("forward")
    h.flood(100)
    assert len(h.eng.quotas.overloaded) == 1
    h.now += 5.0
    h.sw.apply(h.eng.tick(h.now))
    assert h.eng.quotas.overloaded == {} and h.eng.metrics.values("devices_overloaded") == {(): 0}
    h.sw.remove_cookie(OVERLOAD_COOKIE)        # the switch's hard timeout
    assert h.udp(FLOODER, MAC_F, IP_F, 1234, b"hello").mirrored


def test_overload_rules_are_stale_after_a_controller_restart():
    """Overload rules are not sessions: a restarted controller deletes them (the device
    is judged afresh)."""
    h = Home("forward")
    h.flood(100)
    flows = [r for t in h.sw.tables.values() for r in t]
    assert sum(r.cookie == OVERLOAD_COOKIE for r in flows) == 2
    new = GatewayEngine(h.eng.preprocess, PrefixClassifier(), h.eng.enforce, wan_port=WAN,
                        clock=lambda: 0.0)
    new.switch_connected(fresh=True, readback=True)
    deletes = adopt(new, flows, [], ["voip", "p2p"])
    gone = [m for m in deletes if getattr(m, "command", "") == "delete" and m.priority == 2]
    assert len(gone) == 2


@pytest.mark.parametrize("device_entry,expected", [
    ("", "drop"),
    ("devices: [{mac: '02:00:00:00:00:0f', classes: {p2p: {on_overload: forward}}}]",
     "forward"),
])
def test_overload_action_follows_class_entries_and_device_overrides(device_entry, expected):
    policy = parse_policy(POLICY % "drop" + device_entry)
    assert overload_action(policy, MAC_F, IP_F) == expected
    assert overload_action(policy, MAC_O, IP_O) == "drop"
    assert overload_action(parse_policy(POLICY % "forward")) == "forward"


def test_overload_action_follows_the_device_type_entry():
    """A camera's device_types entry may keep its flood forwarded while the class entries
    would drop it (or drop a plug's); its MAC's own device entry still wins."""
    types = """device_types:
  camera: {all: {on_overload: forward}}
  plug: {classes: {voip: {on_overload: drop}}}
"""
    policy = parse_policy(POLICY % "drop" + types)
    kinds = {MAC_F: ("cam-1", "camera"), MAC_O: ("plug-1", "plug")}
    enforcer = PolicyEnforcer(policy, device_type_of=lambda mac: kinds.get(mac, ("unknown_device",)))
    assert enforcer.on_overload(MAC_F, IP_F) == "forward"     # the type overrides p2p's drop
    assert enforcer.on_overload("02:00:00:00:00:aa", "10.0.0.99") == "drop"   # no type entry
    policy = parse_policy(POLICY % "forward" + types)
    enforcer = PolicyEnforcer(policy, device_type_of=lambda mac: kinds.get(mac, ("unknown_device",)))
    assert enforcer.on_overload(MAC_O, IP_O) == "drop"        # the plug's voip says drop
    assert enforcer.on_overload(MAC_F, IP_F) == "forward"
    mine = parse_policy(POLICY % "forward" + types
                        + "devices: [{mac: '02:00:00:00:00:0e', all: {on_overload: forward}}]")
    assert PolicyEnforcer(mine, lambda mac: kinds[mac]).on_overload(MAC_O, IP_O) == "forward"


def test_quota_buckets_are_bounded():
    from ryu_apps.gateway.quotas import DeviceQuotas
    q = DeviceQuotas(rate=1, burst=1, max_devices=100)
    for i in range(10_000):               # spoofed MACs
        q.take((1, f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}"), 0.0)
    assert len(q.buckets) == 100
