"""Small policy texts shared by the policy tests."""

WAN = """\
wan:
  uplink_kbps: 10000
  default_class: be
  classes:
    - {name: rt, dscp: [EF], rate_kbps: 2000, prio: 0}
    - {name: video, dscp: [AF41], rate_kbps: 3000, prio: 1}
    - {name: be, dscp: [CS0, AF21], rate_kbps: 4000, prio: 2}
    - {name: bulk, dscp: [CS1], rate_kbps: 1000, ceil_kbps: 5000, prio: 3}
"""

BASE = """\
version: 1
default:
  action: allow
  dscp: best-effort
  idle_timeout: 30
classes:
  voip:
    dscp: EF
    idle_timeout: 20
  streaming:
    dscp: AF41
    rate_limit: {kbps: 4000, burst_kb: 800, scope: class}
  p2p:
    dscp: CS1
    rate_limit: {kbps: 1000, scope: session}
  chat:
    dscp: AF21
    queue: 2
""" + WAN


# --------------------------------------------------------------------------------------
import pytest

from policies import (DEFAULT_POLICY_PATH, STRICT_POLICY_PATH, Policy, PolicyError,
                      load_policy, parse_policy)
from policies.loader import check_policy_file, check_policy_text

LABELS = ["chat", "email", "file_transfer", "p2p", "streaming", "voip"]


def errors(text, labels=None, allow_unlisted=False):
    policy, issues = check_policy_text(text, "p.yaml", labels, allow_unlisted)
    return policy, [i for i in issues if i.severity == "error"]


def test_shipped_files_load_and_are_package_data():
    assert DEFAULT_POLICY_PATH.name == "smart_home.yaml" and DEFAULT_POLICY_PATH.is_file()
    for path in (DEFAULT_POLICY_PATH, STRICT_POLICY_PATH):
        policy, issues = check_policy_file(path, labels=LABELS + ["unknown"])
        assert policy is not None and issues == [], [str(i) for i in issues]
        assert set(policy.classes) == set(LABELS)


def test_base_parses():
    p = parse_policy(BASE)
    assert isinstance(p, Policy)
    assert p.classes["voip"].dscp == 46
    assert p.classes["streaming"].rate_limit.kbps == 4000
    assert p.classes["p2p"].rate_limit.scope == "session"
    assert p.classes["chat"].queue == 2
    assert p.default.idle_timeout == 30 and p.classes["voip"].idle_timeout == 20
    assert p.wan.uplink_kbps == 10000 and p.wan.default_class == "be"
    assert [c.name for c in p.wan.classes] == ["rt", "video", "be", "bulk"]
    assert p.wan.classes[0].dscp == (46,)
    assert p.wan.ceil_of(p.wan.classes[0]) == 10000 and p.wan.ceil_of(p.wan.classes[3]) == 5000


def test_default_entry_is_optional_and_best_effort():
    p = parse_policy("classes: {}\n" + WAN)
    assert p.default.action == "allow" and p.default.dscp == 0


def test_rate_limit_shorthand():
    p = parse_policy(BASE.replace("rate_limit: {kbps: 1000, scope: session}", "rate_limit: 700"))
    assert p.classes["p2p"].rate_limit.kbps == 700
    assert p.classes["p2p"].rate_limit.scope == "class"


def _line_of(text, needle):
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(needle)


BROKEN = [
    # (replace this, with this, key, message part, line marker)
    ("kbps: 1000, scope", "kbps: -5, scope", "classes.p2p.rate_limit.kbps",
     "greater than 0, got -5", "kbps: -5"),
    ("dscp: AF41", "dscp: AF51", "classes.streaming.dscp", "unknown DSCP name 'AF51'",
     "AF51"),
    ("dscp: EF\n    idle", "dscp: 64\n    idle", "classes.voip.dscp", "out of range 0-63",
     "dscp: 64"),
    ("    queue: 2", "    queue: -1", "classes.chat.queue", "greater than or equal to 0",
     "queue: -1"),
    ("    queue: 2", "    qeue: 2", "classes.chat.qeue", "unknown key 'qeue' (allowed: action",
     "qeue"),
    ("    idle_timeout: 20", "    idle_timeout: 70000", "classes.voip.idle_timeout",
     "less than or equal to 65535", "70000"),
    ("    idle_timeout: 20", "    idle_timeout: soon", "classes.voip.idle_timeout",
     "valid integer", "soon"),
    ("  action: allow", "  action: block", "default.action", "'allow' or 'drop'",
     "block"),
    ("  uplink_kbps: 10000", "  uplink_kbps: 0", "wan.uplink_kbps", "greater than 0",
     "uplink_kbps: 0"),
    ("default_class: be", "default_class: nope", "wan.default_class",
     "no WAN class named 'nope'", "nope"),
    ("rate_kbps: 1000, ceil_kbps: 5000", "rate_kbps: 1000, ceil_kbps: 50000",
     "wan.classes[3].ceil_kbps", "exceeds the uplink", "50000"),
    ("rate_kbps: 4000, prio: 2", "rate_kbps: 6000, prio: 2", "wan.classes",
     "add up to 12000 kbit/s", "  classes:"),
    ("dscp: [CS0, AF21]", "dscp: [CS0, EF]", "wan.classes[2].dscp[1]",
     "already mapped to WAN class 'rt'", "dscp: [CS0, EF]"),
    ("prio: 3}", "prio: 8}", "wan.classes[3].prio", "less than or equal to 7", "prio: 8"),
    ("version: 1", "version: 2", "version", "must be 1", "version: 2"),
    ("  chat:\n", "  unknown:\n", "classes.unknown", "cannot be a class entry", "unknown:"),
]


@pytest.mark.parametrize("old,new,key,msg,marker", BROKEN, ids=[b[2] for b in BROKEN])
def test_broken_files_give_precise_errors(old, new, key, msg, marker):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    policy, errs = errors(text)
    assert policy is None
    assert errs, "expected an error"
    hit = [e for e in errs if e.key == key]
    assert hit, [str(e) for e in errs]
    e = hit[0]
    assert msg in e.message, str(e)
    assert e.line == _line_of(text, marker), str(e)
    assert e.file == "p.yaml"
    assert str(e).startswith(f"p.yaml:{e.line}:")


def test_load_policy_raises_user_facing_error_naming_file_line_key(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(BASE.replace("dscp: AF41", "dscp: AF51"))
    with pytest.raises(PolicyError) as ei:
        load_policy(f)
    err = ei.value
    assert err.user_facing is True
    line = _line_of(f.read_text(), "AF51")
    assert f"{f}:{line}:" in str(err)
    assert "classes.streaming.dscp" in str(err) and "AF51" in str(err)
    assert "\n" not in str(err)


def test_every_error_is_reported_not_only_the_first():
    text = BASE.replace("dscp: AF41", "dscp: XX").replace("queue: 2", "queue: -3") \
        .replace("uplink_kbps: 10000", "uplink_kbps: -1")
    _, errs = errors(text)
    assert {e.key for e in errs} >= {"classes.streaming.dscp", "classes.chat.queue",
                                     "wan.uplink_kbps"}
    assert [e.line for e in errs] == sorted(e.line for e in errs)


def test_missing_and_wrong_sections():
    _, errs = errors("classes: {}\n")
    assert [(e.key, e.line) for e in errs] == [("wan", 1)]
    assert "missing required key 'wan'" in errs[0].message
    _, errs = errors(BASE.replace("    - {name: rt, dscp: [EF], rate_kbps: 2000, prio: 0}",
                                  "    - {name: rt, dscp: [EF], prio: 0}"))
    assert any(e.key == "wan.classes[0].rate_kbps" and "missing" in e.message for e in errs)
    with pytest.raises(PolicyError, match="must be a YAML mapping"):
        check_policy_text("- a\n- b\n", "p.yaml")


def test_yaml_syntax_error_has_line():
    with pytest.raises(PolicyError) as ei:
        check_policy_text(BASE + "  bad: [unclosed\n", "p.yaml")
    assert "p.yaml:" in str(ei.value) and "invalid YAML" in str(ei.value)
    assert ei.value.issues[0].line is not None


def test_duplicate_keys_are_errors():
    text = BASE.replace("  chat:\n", "  voip:\n    dscp: CS1\n  chat:\n")
    _, errs = errors(text)
    dup = [e for e in errs if "duplicate key 'voip'" in e.message]
    assert dup and dup[0].key == "classes.voip"


def test_unreadable_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.yaml")


def test_model_labels_unknown_class_with_suggestion_and_unlisted():
    text = BASE.replace("  voip:\n", "  vopi:\n")
    policy, errs = errors(text, labels=LABELS)
    assert policy is None
    unknown = [e for e in errs if e.key == "classes.vopi"][0]
    assert "unknown class name 'vopi'" in unknown.message
    assert "did you mean 'voip'" in unknown.message
    assert unknown.line == _line_of(text, "vopi:")
    unlisted = [e for e in errs if "no entry" in e.message][0]
    assert "'email'" in unlisted.message and "'file_transfer'" in unlisted.message
    assert "'voip'" in unlisted.message
    assert unlisted.line == _line_of(text, "classes:")
    # --allow-unlisted: a warning only
    policy, issues = check_policy_text(BASE, "p.yaml", LABELS, allow_unlisted=True)
    assert policy is not None
    assert [i.severity for i in issues] == ["warning"]


def test_device_entries_validate():
    text = BASE + """\
devices:
  - name: monitor
    mac: "AA-BB-CC-DD-EE-01"
    all: {dscp: EF}
  - name: guest
    ip: [192.168.50.0/24, "fd00:50::/64"]
    classes:
      p2p: {action: drop}
  - mac: 10:22:33:44:55:59
    classes: {streaming: {rate_limit: null}}
"""
    p = parse_policy(text)
    assert p.devices[0].mac == ("aa:bb:cc:dd:ee:01",)
    assert p.devices[1].ip == ("192.168.50.0/24", "fd00:50::/64")
    # a MAC that YAML 1.1 would read as a base-60 integer stays a MAC
    assert p.devices[2].mac == ("10:22:33:44:55:59",)
    assert p.devices[2].label == "10:22:33:44:55:59"


@pytest.mark.parametrize("device,key,msg", [
    ('  - {name: x, mac: "aa:bb:cc:dd:ee"}', "devices[0].mac", "not a MAC address"),
    ("  - {name: x, ip: 192.168.1.300}", "devices[0].ip", "not an IP address"),
    ("  - {name: x, all: {dscp: EF}}", "devices[0]", "needs a `mac` or an `ip`"),
    ("  - {name: x, ip: 10.0.0.1, all: {dscp: EG}}", "devices[0].all.dscp",
     "unknown DSCP name 'EG'"),
    ("  - {name: x, ip: 10.0.0.1, all: {action: null}}", "devices[0].all.action",
     "cannot be null"),
    ("  - {name: x, ip: 10.0.0.1, color: red}", "devices[0].color", "unknown key 'color'"),
])
def test_broken_devices(device, key, msg):
    text = BASE + "devices:\n" + device + "\n"
    _, errs = errors(text)
    hit = [e for e in errs if e.key == key]
    assert hit and msg in hit[0].message, [str(e) for e in errs]
    assert hit[0].line == len(BASE.splitlines()) + 2


def test_device_class_names_checked_against_model():
    text = BASE + "devices:\n  - {ip: 10.0.0.0/8, classes: {torrent: {action: drop}}}\n"
    _, errs = errors(text, labels=LABELS, allow_unlisted=True)
    assert [e.key for e in errs] == ["devices[0].classes.torrent"]


def test_warnings_do_not_fail():
    text = BASE.replace("dscp: AF21", "dscp: AF31")   # not mapped to any WAN class
    policy, issues = check_policy_text(text, "p.yaml")
    assert policy is not None
    assert any(i.severity == "warning" and i.key == "classes.chat.dscp" for i in issues)


def test_programmatic_construction_enforces_cross_field_rules():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="no WAN class named"):
        Policy.model_validate({"wan": {"uplink_kbps": 100, "default_class": "x",
                                       "classes": [{"name": "y", "rate_kbps": 10}]}})


def test_docs_full_example_is_valid():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "policies.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    policy, issues = check_policy_text(block, "docs/policies.md", LABELS)
    assert policy is not None and not issues, [str(i) for i in issues]
    assert len(policy.devices) == 2


@pytest.mark.parametrize("text,key,msg", [
    ("classes:\n  123: {dscp: EF}\n" + WAN, "classes.123", "keys here must be text"),
    ("wan: fast\n", "wan", "must be a valid dictionary, got 'fast'"),
    ("classes:\n  voip:\n" + WAN, "classes.voip", "got nothing (null)"),
    ("", "wan", "missing required key 'wan'"),
    ("classes:\n  voip: {dscp: yes}\n" + WAN, "classes.voip.dscp", "not a DSCP value"),
    ("classes:\n  voip: {rate_limit: {kbps: 1.5}}\n" + WAN, "classes.voip.rate_limit.kbps",
     "valid integer"),
])
def test_odd_inputs_have_plain_messages(text, key, msg):
    _, errs = errors(text)
    assert [e.key for e in errs] == [key] and msg in errs[0].message, [str(e) for e in errs]
    assert errs[0].line is not None


def test_unknown_entry_is_used_for_unknown_sessions_only():
    from policies.enforcement import enforcement_for
    from policies.schema import Policy

    wan = {"uplink_kbps": 20000, "default_class": "be",
           "classes": [{"name": "be", "dscp": ["CS0"], "rate_kbps": 20000}]}
    base = {"version": 1, "default": {"dscp": "AF21"}, "classes": {"voip": {"dscp": "EF",
                                                                            "min_confidence": 0.6}},
            "wan": wan}
    # without an `unknown` entry: unknown sessions get `default`
    p = Policy.model_validate(base)
    assert enforcement_for(p, "unknown").cls == "default"
    # with one: unknown sessions and low-confidence ones get it; unlisted classes `default`
    p = Policy.model_validate({**base, "unknown": {"dscp": "CS1", "rate_limit": {"kbps": 3000}}})
    u = enforcement_for(p, "unknown")
    assert (u.cls, u.dscp, u.rate_kbps) == ("unknown", 8, 3000)
    assert enforcement_for(p, "voip", confidence=0.4).cls == "unknown"
    assert enforcement_for(p, "voip", confidence=0.9).dscp == 46
    assert enforcement_for(p, "thermostat").cls == "default"
    # still not a class name
    with pytest.raises(ValueError, match="top-level `unknown` entry"):
        Policy.model_validate({**base, "classes": {"unknown": {"dscp": "EF"}}})
