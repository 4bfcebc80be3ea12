"""The device model is reloaded live, as the session model is (issue 14): a changed
bundle identifies the devices seen from then on, devices already identified keep their
decision, and a bad bundle (truncated tflite, bad card.json, labels that do not match
the model) is rejected with one error line naming the file while the last good one
keeps identifying. Driven through ``Gateway.watch`` (the ``egw_model_watch`` poll)."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from ryu_apps.gateway.audit import records
from ryu_apps.gateway.core import Gateway
from tests.unit.test_gateway_devices import DEVICE_MODEL, DPID, LAN, POLICY, WAN, _conf
from topologies.builtin_devices import device_frames

ALLOW = POLICY.replace("quarantine", "allow")     # identification only, nothing held

pytestmark = pytest.mark.skipif(not (DEVICE_MODEL / "labels.json").is_file(),
                                reason="no device bundle")


@pytest.fixture
def bundle_dir(tmp_path):
    d = tmp_path / "devices"
    shutil.copytree(DEVICE_MODEL, d)
    return d


def _gateway(tmp_path, bundle_dir) -> Gateway:
    g = Gateway(_conf(tmp_path, policy=ALLOW, egw_device_model=str(bundle_dir)))
    g.switch_connected(DPID)
    g.ports(DPID, {LAN: "s1-eth1", WAN: "s1-wan"})
    return g


@pytest.fixture
def gw(tmp_path, bundle_dir):
    g = _gateway(tmp_path, bundle_dir)
    assert g.device_model.current is not None
    return g


def _identify(gw, mac: str, seeds=range(24)) -> dict:
    """Feed a device's setup frames (more than any budget) until it is decided."""
    for i in seeds:
        for _ts, f in device_frames(mac, "camera", seed=i):
            gw.device_packet(DPID, LAN if f.src == mac else WAN, bytes(f))
    return next(d for d in gw.devices_view()["devices"] if d["mac"] == mac)


def _touch(path: Path) -> None:
    """A new mtime, so the poll sees a change even within the clock's resolution."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def _other_bundle(bundle_dir: Path) -> None:
    """Turn the bundle into a different valid one: its types renamed ``v2-*`` (kinds
    too) and threshold 0, so every device it decides gets one of the new names."""
    labels = json.loads((bundle_dir / "labels.json").read_text())
    (bundle_dir / "labels.json").write_text(json.dumps([f"v2-{x}" for x in labels]))
    card = json.loads((bundle_dir / "card.json").read_text())
    card["threshold"] = 0.0
    dev = card["data"]["manifest"]["options"]["device"]
    dev["kinds"] = {f"v2-{k}": v for k, v in dev["kinds"].items()}
    (bundle_dir / "card.json").write_text(json.dumps(card))
    _touch(bundle_dir / "card.json")


def _reloads(gw, result: str) -> float:
    return gw.metrics.device_model_reloads.labels(result)._value.get()


def test_swapped_bundle_identifies_new_devices_decisions_made_stay(gw, bundle_dir, tmp_path):
    before = _identify(gw, "02:aa:00:00:00:01")
    assert before["state"] == "identified" and before["reason"] == "model"
    assert not (before["type"] or "").startswith("v2-")
    midway = "02:aa:00:00:00:02"            # first seen before the swap, decided after it
    _identify(gw, midway, seeds=range(1))
    assert gw.devices.devices[midway].state == "identifying"
    _other_bundle(bundle_dir)
    gw.watch()
    assert _reloads(gw, "ok") == 1 and gw.devices_view()["model_error"] is None
    after = _identify(gw, "02:aa:00:00:00:03")
    assert after["state"] == "identified" and after["reason"] == "model"
    assert after["type"].startswith("v2-"), after           # the new bundle named it
    assert after["kind"] == json.loads((DEVICE_MODEL / "card.json").read_text())[
        "data"]["manifest"]["options"]["device"]["kinds"][after["type"][3:]]
    # already identified: kept; being identified: finished with the bundle it started on
    views = {d["mac"]: d for d in gw.devices_view()["devices"]}
    assert views[before["mac"]]["type"] == before["type"]
    mid = _identify(gw, midway, seeds=range(1, 24))
    assert mid["state"] == "identified" and not (mid["type"] or "").startswith("v2-")
    ev = [r for r in records(tmp_path / "d.jsonl") if r["event"] == "device-model"]
    assert [(r["trigger"], r["ok"]) for r in ev] == [("start", True), ("file change", True)]


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2])


def _not_json(p: Path) -> None:
    p.write_text(p.read_text()[:200])


def _session_card(p: Path) -> None:
    card = json.loads(p.read_text())
    del card["data"]["manifest"]["options"]["device"]
    p.write_text(json.dumps(card))


def _two_labels(p: Path) -> None:
    p.write_text(json.dumps(["a", "b"]))


CORRUPTIONS = {      # name: (file, how, words of the problem)
    "truncated tflite": ("model.int8.tflite", _truncate, "not a valid Flatbuffer"),
    "card not json": ("card.json", _not_json, "card.json"),
    "card of a session model": ("card.json", _session_card, "not a device model"),
    "labels mismatch": ("labels.json", _two_labels, "labels.json"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_bad_bundle_is_named_once_and_the_last_good_one_keeps_identifying(
        gw, bundle_dir, tmp_path, caplog, case):
    name, corrupt, words = CORRUPTIONS[case]
    good = gw.devices.bundle
    before = _identify(gw, "02:bb:00:00:00:01")
    corrupt(bundle_dir / name)
    _touch(bundle_dir / name)
    with caplog.at_level(logging.INFO):
        gw.watch()
        gw.watch()                                   # nothing changed since: no retry
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert str(bundle_dir / name) in errors[0] and words in errors[0], errors[0]
    assert "keeping the running device model" in errors[0]
    assert gw.devices.bundle is good and _reloads(gw, "rejected") == 1
    assert str(bundle_dir / name) in gw.devices_view()["model_error"]
    assert str(bundle_dir / name) in gw.status({})["device_model_error"]
    ev = [r for r in records(tmp_path / "d.jsonl") if r["event"] == "device-model"]
    assert ev[-1]["ok"] is False and str(bundle_dir / name) in ev[-1]["message"]
    # the last good bundle still identifies new devices, as it did before
    again = _identify(gw, "02:bb:00:00:00:02")
    assert again["state"] == "identified" and again["reason"] == "model"
    assert (again["type"], again["packets_needed"]) == (before["type"], before["packets_needed"])
    # fixed: loaded again
    shutil.copy(DEVICE_MODEL / name, bundle_dir / name)
    _touch(bundle_dir / name)
    gw.watch()
    assert gw.devices.bundle is not good and gw.devices_view()["model_error"] is None
    assert _reloads(gw, "ok") == 1


def test_bad_bundle_at_start_every_device_unknown_until_fixed(tmp_path, bundle_dir, caplog):
    _two_labels(bundle_dir / "labels.json")
    with caplog.at_level(logging.ERROR):
        gw = _gateway(tmp_path, bundle_dir)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(bundle_dir / "labels.json") in errors[0], errors
    assert "every device is unknown_device" in errors[0]
    first = _identify(gw, "02:cc:00:00:00:01", seeds=range(1))
    assert (first["type"], first["reason"]) == ("unknown_device", "no-model")
    shutil.copy(DEVICE_MODEL / "labels.json", bundle_dir / "labels.json")
    _touch(bundle_dir / "labels.json")
    gw.watch()
    later = _identify(gw, "02:cc:00:00:00:02")
    assert later["reason"] == "model" and later["packets_needed"] > 0
    assert gw.devices_view()["devices"][0]["reason"] == "no-model"     # kept
