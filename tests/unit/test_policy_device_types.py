"""Policy by device type (issue 14): `device_types` entries override class entries for a
device's sessions, MAC entries still win, names are checked against a device model."""
from __future__ import annotations

import json

import pytest

from egw_cli.main import main as egw
from policies.enforcement import enforcement_for
from policies.loader import check_policy_text, load_device_names, parse_policy

BASE = """
version: 1
default: {action: allow, dscp: 0}
classes:
  voip: {dscp: EF}
  streaming: {dscp: AF41}
wan:
  uplink_kbps: 20000
  default_class: be
  classes:
    - {name: rt, dscp: [EF, AF41, CS1], rate_kbps: 5000, prio: 0}
    - {name: be, dscp: [CS0], rate_kbps: 15000, prio: 1}
"""
TYPES = """
device_types:
  unknown_device: {action: quarantine}
  camera:
    all: {dscp: CS1}
    classes: {voip: {action: drop}}
  HueBridge: {all: {rate_limit: 500}}
devices:
  - {name: door-cam, mac: "02:00:00:00:00:0c", classes: {voip: {action: allow, dscp: EF}}}
"""


def test_type_entry_overrides_class_entry_and_mac_entry_wins():
    p = parse_policy(BASE + TYPES)
    cam = ("EdimaxCam", "camera")
    assert enforcement_for(p, "streaming", device_type=cam).dscp == 8          # CS1
    e = enforcement_for(p, "voip", "02:00:00:00:00:09", device_type=cam)
    assert e.action == "drop" and e.devices == ("type:camera",)
    # a more specific MAC entry wins over the type entry
    e = enforcement_for(p, "voip", "02:00:00:00:00:0c", device_type=cam)
    assert (e.action, e.dscp) == ("allow", 46)
    # the type itself is looked up before its kind
    assert enforcement_for(p, "voip", device_type=("HueBridge", "hub")).rate_kbps == 500
    # no entry for it: the class entry as before
    assert enforcement_for(p, "voip", device_type=("Aria", "sensor")).dscp == 46
    assert p.device_type_entry(("unknown_device",))[1].action == "quarantine"


def test_bad_action_is_reported_with_its_line():
    _pol, issues = check_policy_text(BASE + "device_types:\n  camera: {action: block}\n", "p.yaml")
    assert any(i.line == 14 and "device_types.camera.action" in i.key for i in issues), issues


def _device_model(tmp_path):
    d = tmp_path / "devices"
    d.mkdir()
    (d / "labels.json").write_text(json.dumps(["EdimaxCam", "HueBridge"]))
    (d / "card.json").write_text(json.dumps({"data": {"manifest": {"options": {"device": {
        "windows": 3, "kinds": {"EdimaxCam": "camera", "HueBridge": "hub"}}}}}}))
    return d


def test_names_checked_against_the_device_model(tmp_path, capsys):
    d = _device_model(tmp_path)
    assert load_device_names(d) == ["EdimaxCam", "HueBridge", "camera", "hub"]
    _pol, issues = check_policy_text(BASE + "device_types:\n  camra: {action: quarantine}\n",
                                     "p.yaml", device_names=load_device_names(d))
    assert len(issues) == 1 and "unknown device type 'camra'" in issues[0].message
    assert "did you mean 'camera'" in issues[0].message and issues[0].line == 14
    f = tmp_path / "p.yaml"
    f.write_text(BASE + TYPES.replace("  HueBridge: {all: {rate_limit: 500}}\n", ""))
    assert egw(["policy", "check", str(f), "--device-model", str(d)]) == 0
    f.write_text(BASE + TYPES)
    assert egw(["policy", "check", str(f), "--device-model", str(d)]) == 0
    f.write_text(BASE + "device_types:\n  toaster: {}\n")
    assert egw(["policy", "check", str(f), "--device-model", str(d)]) == 1
    assert "toaster" in capsys.readouterr().err


def test_a_session_model_is_not_a_device_model(tmp_path):
    from policies.errors import PolicyError
    d = _device_model(tmp_path)
    (d / "card.json").write_text("{}")
    with pytest.raises(PolicyError, match="not a device model"):
        load_device_names(d)
