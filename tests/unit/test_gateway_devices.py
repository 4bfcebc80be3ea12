"""Live device identification, quarantine and approval (issue 14) on the in-memory
flow table: a new MAC's frames are copied while the switch forwards them, the device
bundle names its type, an unidentified device reaches only DHCP/DNS/NTP until approved,
and the decisions outlive a controller restart (persisted)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from classifier.bundle import load_bundle
from ryu_apps import egw_flags
from ryu_apps.gateway.audit import records
from ryu_apps.gateway.core import Gateway
from ryu_apps.gateway.devices import (IDENTIFY_PRIORITY, QUARANTINE_ALLOW_PRIORITY, DeviceTable,
                                      device_cookie)
from ryu_apps.gateway.flowtable import FlowTableModel
from ryu_apps.gateway.rules import L2Learning, ReadRequest
from topologies.builtin_devices import GW_MAC, device_frames

REPO = Path(__file__).resolve().parents[2]
DEVICE_MODEL = REPO / "classifier" / "models" / "devices"
LAN, WAN, DPID = 1, 2, 1
DEV = "02:aa:bb:cc:dd:01"
POLICY = """
version: 1
default: {action: allow, dscp: 0}
wan:
  uplink_kbps: 20000
  default_class: be
  classes: [{name: be, dscp: [CS0], rate_kbps: 20000, prio: 1}]
device_types:
  unknown_device: {action: quarantine}
"""


def _conf(tmp_path, policy=POLICY, **kw):
    c = {o.dest: o.default for o in egw_flags.OPTS}
    (tmp_path / "p.yaml").write_text(policy)
    c.update({"egw_wan_htb": False, "egw_policy": str(tmp_path / "p.yaml"),
              "egw_decision_log": str(tmp_path / "d.jsonl"), "egw_restore": False, **kw})
    return SimpleNamespace(**c)


def _switch(gw):
    sw = FlowTableModel(ports=[LAN, WAN])
    sw.apply(gw.switch_connected(DPID))
    gw.ports(DPID, {LAN: "s1-eth1", WAN: "s1-wan"})
    l2 = L2Learning()
    for port, mac in ((LAN, DEV), (WAN, GW_MAC)):
        l2.packet(DPID, port, mac, "ff:ff:ff:ff:ff:ff")
    sw.apply(l2.packet(DPID, LAN, DEV, GW_MAC)[1] + l2.packet(DPID, WAN, GW_MAC, DEV)[1])
    return sw


def _pkt(proto: str, dport: int, src=DEV, dst=GW_MAC, port=LAN):
    return {"in_port": port, "eth_src": src, "eth_dst": dst, "eth_type": 0x0800,
            "ip_proto": 6 if proto == "tcp" else 17, "ipv4_src": "192.168.1.50",
            "ipv4_dst": "93.184.216.34", f"{proto}_src": 40000, f"{proto}_dst": dport}


def _feed(gw, sw, frames):
    for _ts, f in frames:
        port = LAN if f.src == DEV else WAN
        for msgs in gw.device_packet(DPID, port, bytes(f)).values():
            sw.apply(msgs)


def test_unknown_device_reaches_only_dhcp_dns_ntp_until_approved(tmp_path):
    gw = Gateway(_conf(tmp_path))                      # no device model: unknown_device
    sw = _switch(gw)
    _feed(gw, sw, device_frames(DEV, "camera")[:1])    # its DHCP discover
    dev = gw.devices_view()["devices"][0]
    assert (dev["mac"], dev["type"], dev["quarantined"]) == (DEV, "unknown_device", True)
    assert sw.process(_pkt("udp", 53)).outputs == [WAN]        # DNS to the resolver
    assert sw.process(_pkt("udp", 123)).outputs == [WAN]       # NTP
    assert sw.process(_pkt("tcp", 443)).dropped                # TCP 443 to the WAN
    assert sw.process(_pkt("udp", 3478)).dropped
    # only this device is held: every quarantine rule matches its MAC
    held = [r for r in sw.flows(0) if r.cookie == device_cookie(DEV)]
    assert held and all(DEV in r.match.values() for r in held)
    assert max(r.priority for r in held) == QUARANTINE_ALLOW_PRIORITY
    view, out = gw.approve_device(DEV.upper())
    assert view["approved"] and not view["quarantined"]
    sw.apply(out[DPID])
    assert sw.process(_pkt("tcp", 443)).outputs == [WAN]
    assert not [r for r in sw.flows(0) if r.cookie == device_cookie(DEV)]
    ev = [(r["event"], r.get("mac")) for r in records(tmp_path / "d.jsonl")
          if r["event"].startswith("device")]
    assert ev == [("device", DEV), ("device-approved", DEV)]
    assert gw.approve_device("02:00:00:00:00:77") == (None, {})


def test_policy_reload_quarantines_and_releases_known_devices(tmp_path):
    gw = Gateway(_conf(tmp_path, policy=POLICY.replace("quarantine", "allow")))
    sw = _switch(gw)
    _feed(gw, sw, device_frames(DEV, "plug")[:1])
    assert sw.process(_pkt("tcp", 443)).outputs == [WAN]
    (tmp_path / "p.yaml").write_text(POLICY)
    ok, _msg, out = gw.reload_policy("rest")
    assert ok
    sw.apply(out[DPID])
    assert sw.process(_pkt("tcp", 443)).dropped and sw.process(_pkt("udp", 53)).outputs == [WAN]


@pytest.mark.skipif(not (DEVICE_MODEL / "labels.json").is_file(), reason="no device bundle")
def test_new_device_is_mirrored_while_forwarded_then_identified(tmp_path):
    gw = Gateway(_conf(tmp_path, policy=POLICY.replace("quarantine", "allow"),
                       egw_device_model=str(DEVICE_MODEL),
                       egw_device_state=str(tmp_path / "devices.json")))
    sw = _switch(gw)
    frames = [f for i in range(24) for f in device_frames(DEV, "camera", seed=i)]  # > budget
    _feed(gw, sw, frames[:1])
    rules = [r for r in sw.flows(0) if r.cookie == device_cookie(DEV)]
    assert {r.priority for r in rules} == {IDENTIFY_PRIORITY}
    v = sw.process(_pkt("tcp", 443))
    assert v.mirrored and v.outputs == [WAN]           # a copy; forwarding not held
    _feed(gw, sw, frames[1:])
    bundle = load_bundle(DEVICE_MODEL)
    budget = gw.devices.windows * bundle.preprocess.k
    dev = gw.devices_view()["devices"][0]
    assert dev["state"] == "identified" and dev["reason"] == "model"
    assert dev["packets_needed"] == budget and dev["type"] in bundle.labels + ["unknown_device"]
    assert 0 < dev["confidence"] <= 1
    assert not [r for r in sw.flows(0) if r.cookie == device_cookie(DEV)]   # copies stop
    metrics = gw.metrics.render().decode()
    assert f'egw_devices{{dp_id="{DPID:016x}",type="{dev["type"]}"}} 1.0' in metrics
    saved = json.loads((tmp_path / "devices.json").read_text())
    assert saved["devices"][0]["type"] == dev["type"]


def test_decisions_survive_a_controller_restart(tmp_path):
    state = tmp_path / "devices.json"
    gw = Gateway(_conf(tmp_path, egw_device_state=str(state)))
    sw = _switch(gw)
    _feed(gw, sw, device_frames(DEV, "camera")[:1])
    assert sw.process(_pkt("tcp", 443)).dropped
    # restart: a new process reads the state, the switch is read back (it deletes rules
    # it does not know), then the device's quarantine rules are sent again
    gw2 = Gateway(_conf(tmp_path, egw_device_state=str(state), egw_restore=True))
    assert gw2.devices_view()["devices"][0]["quarantined"]
    msgs = gw2.switch_connected(DPID)
    sw.apply(msgs)
    for r in msgs:
        if isinstance(r, ReadRequest) and r.what in ("flows", "meters"):
            items = sw.flows() if r.what == "flows" else []
            sw.apply(gw2.readback_reply(DPID, r.what, r.xid, items, False))
    assert sw.process(_pkt("tcp", 443)).dropped
    assert sw.process(_pkt("udp", 53)).outputs == [WAN]
    _v, out = gw2.approve_device(DEV)
    sw.apply(out[DPID])
    gw3 = Gateway(_conf(tmp_path, egw_device_state=str(state)))
    assert gw3.devices_view()["devices"][0]["approved"]          # approval kept too
    assert gw3.devices.rules_for(DPID) == []


def test_tracking_is_bounded_and_times_out(tmp_path):
    if not (DEVICE_MODEL / "labels.json").is_file():
        pytest.skip("no device bundle")
    t = [0.0]
    table = DeviceTable(load_bundle(DEVICE_MODEL), max_seconds=5.0, max_tracking=2,
                        clock=lambda: t[0])
    macs = [f"02:00:00:00:01:{i:02x}" for i in range(3)]
    for m in macs:
        table.observe(DPID, LAN, bytes(device_frames(m, "plug")[0][1]))
    states = {d["mac"]: (d["state"], d["reason"]) for d in table.view()}
    assert states[macs[2]] == ("identified", "busy") and table.skipped == 1
    t[0] = 6.0
    msgs = table.tick()
    assert {d["state"] for d in table.view()} == {"identified"}
    assert all(m.command == "delete" for m in msgs)
    assert {d["reason"] for d in table.view() if d["mac"] != macs[2]} == {"timeout"}
