import dataclasses

import pytest

from policies import DEFAULT_POLICY_PATH, STRICT_POLICY_PATH, Enforcement, enforcement_for, \
    enforcement_table, load_policy, parse_policy
from tests.unit.test_policy_schema import BASE

DEVICES = """\
devices:
  - name: monitor
    mac: "AA:BB:CC:DD:EE:01"
    all: {dscp: EF, idle_timeout: 300}
  - name: guest
    ip: [192.168.50.0/24, "fd00:50::/64"]
    classes:
      p2p: {action: drop}
      streaming: {rate_limit: {kbps: 500, scope: session}}
      default: {dscp: CS1}
  - name: guest-tv
    ip: 192.168.50.7
    classes:
      streaming: {rate_limit: null, dscp: keep}
"""


@pytest.fixture(scope="module")
def policy():
    return parse_policy(BASE + DEVICES)


def test_listed_class(policy):
    e = enforcement_for(policy, "streaming")
    assert e == Enforcement(action="allow", rate_kbps=4000, burst_kb=800, meter_scope="class",
                            dscp=34, queue_id=None, idle_timeout=60, hard_timeout=0,
                            cls="streaming")
    assert enforcement_for(policy, "chat").queue_id == 2
    p2p = enforcement_for(policy, "p2p")
    assert (p2p.rate_kbps, p2p.burst_kb, p2p.meter_scope) == (1000, None, "session")


@pytest.mark.parametrize("name", ["unknown", "gaming", "", "VOIP"])
def test_unknown_and_unlisted_get_default(policy, name):
    e = enforcement_for(policy, name)
    assert e.cls == "default" and e.dscp == 0 and e.idle_timeout == 30
    assert e.action == "allow" and e.rate_kbps is None


def test_enforcement_is_immutable_and_hashable(policy):
    e = enforcement_for(policy, "voip")
    assert hash(e) == hash(enforcement_for(policy, "voip"))
    assert len({e, enforcement_for(policy, "voip"), enforcement_for(policy, "chat")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.dscp = 0
    names = [f.name for f in dataclasses.fields(Enforcement)]
    assert names[:9] == ["action", "rate_kbps", "burst_kb", "meter_scope", "dscp", "queue_id",
                         "idle_timeout", "hard_timeout", "cls"]


def test_drop_carries_no_marking():
    p = parse_policy(BASE.replace("    dscp: CS1\n", "    action: drop\n    dscp: CS1\n"))
    e = enforcement_for(p, "p2p")
    assert e.action == "drop"
    assert (e.rate_kbps, e.burst_kb, e.dscp, e.queue_id) == (None, None, None, None)
    assert e.meter_key is None


def test_meter_keys(policy):
    s = enforcement_for(policy, "streaming")
    assert s.meter_key[0] == "class" and s.meter_key[-2:] == (4000, 800)
    assert s.meter_key == enforcement_for(policy, "streaming").meter_key
    p = enforcement_for(policy, "p2p")
    assert p.meter_key == ("session", 1000, None)
    assert enforcement_for(policy, "voip").meter_key is None


def test_device_by_mac_any_case_and_separator(policy):
    for mac in ("aa:bb:cc:dd:ee:01", "AA-BB-CC-DD-EE-01", "aabbccddee01"):
        e = enforcement_for(policy, "email", mac=mac)
        assert e.dscp == 46 and e.idle_timeout == 300 and e.cls == "default"
        assert e.devices == ("monitor",)
    e = enforcement_for(policy, "streaming", mac="aa:bb:cc:dd:ee:01")
    assert (e.dscp, e.rate_kbps, e.cls) == (46, 4000, "streaming")
    assert enforcement_for(policy, "email", mac="aa:bb:cc:dd:ee:02").dscp == 0
    assert enforcement_for(policy, "email", mac="not-a-mac").dscp == 0


def test_device_by_ip_cidr_and_per_class(policy):
    assert enforcement_for(policy, "p2p", ip="192.168.50.9").action == "drop"
    assert enforcement_for(policy, "p2p", ip="192.168.51.9").action == "allow"
    assert enforcement_for(policy, "p2p", ip="fd00:50::9").action == "drop"
    s = enforcement_for(policy, "streaming", ip="192.168.50.9")
    assert (s.rate_kbps, s.burst_kb, s.meter_scope, s.dscp) == (500, None, "session", 34)
    # voip is not overridden for guests
    assert enforcement_for(policy, "voip", ip="192.168.50.9") == enforcement_for(policy, "voip")
    # classes.default applies to classes that fell back to the default entry only
    assert enforcement_for(policy, "unknown", ip="192.168.50.9").dscp == 8
    assert enforcement_for(policy, "chat", ip="192.168.50.9").dscp == 18


def test_later_device_entries_win(policy):
    e = enforcement_for(policy, "streaming", ip="192.168.50.7")
    assert e.rate_kbps is None and e.dscp is None
    assert e.devices == ("guest", "guest-tv")


def test_mac_or_ip(policy):
    e = enforcement_for(policy, "p2p", mac="aa:bb:cc:dd:ee:01", ip="192.168.50.3")
    assert e.action == "drop"     # the guest entry matched by IP wins for p2p


def test_smart_home_defaults_make_sense():
    p = load_policy(DEFAULT_POLICY_PATH)
    voip, stream, chat, email, ft, p2p, unk = (enforcement_for(p, c) for c in (
        "voip", "streaming", "chat", "email", "file_transfer", "p2p", "unknown"))
    assert voip.dscp == 46 and p.wan.class_for_dscp(46).prio == 0
    assert stream.dscp == 34 and chat.dscp == 18 and email.dscp == 0
    assert ft.dscp == 8 and ft.rate_kbps and p2p.dscp == 8 and p2p.rate_kbps
    assert p.wan.class_for_dscp(8).prio == max(c.prio for c in p.wan.classes)
    assert unk.cls == "default" and unk.dscp == 0
    assert all(e.action == "allow" for e in (voip, stream, chat, email, ft, p2p, unk))
    assert all(e.rate_kbps is None for e in (stream, chat, email, unk))
    # EF is policed per session, so a mislabelled bulk flow cannot fill the priority queue.
    assert (voip.rate_kbps, voip.meter_scope) == (3000, "session")


def test_strict_drops_p2p_and_limits_streaming():
    p = load_policy(STRICT_POLICY_PATH)
    assert enforcement_for(p, "p2p").action == "drop"
    assert enforcement_for(p, "streaming").rate_kbps
    assert enforcement_for(p, "voip").meter_scope == "session"
    bp = enforcement_for(p, "p2p", mac="02:00:00:00:00:01")
    assert bp.action == "allow" and bp.dscp == 46 and bp.rate_kbps is None


def test_table(policy):
    t = enforcement_table(policy, ["voip", "gaming"])
    assert set(t) == {"voip", "streaming", "p2p", "chat", "gaming", "default"}
    assert t["gaming"].cls == "default"


MIN_CONF = """\
version: 1
default: {dscp: best-effort}
classes:
  voip: {dscp: EF, min_confidence: 0.5}
  p2p: {action: drop}
wan: {uplink_kbps: 1000, default_class: be, classes: [{name: be, dscp: [CS0], rate_kbps: 1000}]}
devices:
  - {name: monitor, mac: "02:00:00:00:00:0b", all: {dscp: AF41}}
"""


def test_min_confidence_demotes_unsure_sessions_to_default():
    p = parse_policy(MIN_CONF, "m.yaml")
    assert enforcement_for(p, "voip", confidence=0.8).dscp == 46
    assert enforcement_for(p, "voip", confidence=0.5).dscp == 46   # at the floor: granted
    low = enforcement_for(p, "voip", confidence=0.49)
    assert (low.cls, low.dscp) == ("default", 0)
    # No confidence given (e.g. a device-only lookup): the class entry applies.
    assert enforcement_for(p, "voip").cls == "voip"
    # Classes without a floor are unaffected; device `all` overrides still apply.
    assert enforcement_for(p, "p2p", confidence=0.01).action == "drop"
    assert enforcement_for(p, "voip", "02:00:00:00:00:0b", confidence=0.1).dscp == 34


def test_min_confidence_is_validated_with_its_line():
    with pytest.raises(Exception) as err:
        parse_policy(MIN_CONF.replace("min_confidence: 0.5", "min_confidence: 1.5"), "m.yaml")
    assert "m.yaml:4:" in str(err.value) and "classes.voip.min_confidence" in str(err.value)


def test_shipped_and_generated_policies_guard_priority_with_min_confidence():
    from policies.generate import MIN_CONFIDENCE, generate_policy

    for path in (DEFAULT_POLICY_PATH, STRICT_POLICY_PATH):
        assert load_policy(path).classes["voip"].min_confidence == MIN_CONFIDENCE["voip"] > 0
    gen = parse_policy(generate_policy(["voip", "streaming", "email"]), "gen.yaml")
    assert gen.classes["voip"].min_confidence == MIN_CONFIDENCE["voip"]
    assert gen.classes["email"].min_confidence is None
