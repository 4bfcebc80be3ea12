"""The devices emulation (issue 14): smart-home devices join, the gateway names them, an
unknown one is held in quarantine until approved. ``egw emulate --topo devices`` runs it
alone; the smart-home scenario (``egw emulate``, :mod:`topologies.scenario`) runs it as
its last phase, after the QoS runs (its own gateway and network: nothing of it runs
while the probe's latency is measured).

1. ``ryu-manager`` runs with the device model (``--egw-device-model``) and a policy whose
   ``device_types`` quarantine ``unknown_device`` (a device not identified yet, or below
   the model's threshold).
2. Hosts ``iot1``, ``iot2`` take the MAC of a held-out IoT Sentinel capture each (listed
   in the bundle's ``heldout_captures.json``: captures the model never saw) and replay
   its setup: frames the device sent leave from the device host, frames it received
   from ``inet`` (the gateway's WAN side), in recorded order with the recorded gaps
   (each capped at ``max_gap``), until the device has sent what the model needs. Without
   ``../shared/data/iot-sentinel`` (CI) they replay built-in captures
   (:mod:`topologies.builtin_devices`), which test the path, not the model.
3. ``GET /egw/devices`` then shows each device's type, confidence and packets needed
   (``reason`` ``timeout``: the capture ended, or ``max_seconds`` passed, before the
   model's ``windows × k`` usable packets; it is decided on the windows it has, as
   ``egw evaluate`` does offline).
4. ``guest`` (a new MAC) sends a DHCP discover, then a DNS query and a TCP SYN to port
   443 on ``inet``: the DNS query arrives, the SYN does not. Then (its own IP stack)
   it fails to connect to ``NAMED``, resolves ``DNS_NAME`` through a responder on
   ``inet`` (:mod:`topologies.dns_responder`) which answers ``NAMED``, connects to
   ``NAMED`` but not to ``OTHER`` (both addresses of ``inet``); after
   ``POST /egw/devices/{mac}/approve`` the SYN arrives and ``OTHER`` connects.
"""
from __future__ import annotations

import json
import logging
import select
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEVICE_BUNDLE = REPO / "classifier" / "models" / "devices"
DNS_NAME, NAMED, OTHER = "cdn.vendor.example", "10.0.0.201", "10.0.0.202"
QUARANTINE_UNKNOWN = {"action": "quarantine",
                      "note": "held to DHCP, DNS and NTP until identified or approved"}


def devices_policy(policy_text: str) -> str:
    """The run's policy: the user's, with ``device_types.unknown_device`` set to quarantine
    (whatever it said: the run shows the quarantine), its other ``device_types`` kept."""
    import yaml

    data = yaml.safe_load(policy_text) or {}
    types = data.get("device_types") or {}
    data["device_types"] = {**types, "unknown_device": dict(QUARANTINE_UNKNOWN)}
    return yaml.safe_dump(data, sort_keys=False)


@dataclass
class DeviceCapture:
    source: str                       # the capture (under the data folder) or "built-in:<kind>"
    mac: str
    type: str | None                  # the true type (None: built-in)
    frames: list[tuple[float, bytes]]


def heldout_captures(data_dir: Path, bundle_dir: Path = DEVICE_BUNDLE, n: int = 2
                     ) -> list[DeviceCapture] | None:
    """``n`` held-out captures of different types (None when the data is absent)."""
    from classifier.pcapio import read_frames
    listing = bundle_dir / "heldout_captures.json"
    root = Path(data_dir) / "iot-sentinel"
    if not listing.is_file() or not root.is_dir():
        return None
    entries = json.loads(listing.read_text())
    by_type: dict[str, dict] = {}
    for e in entries:
        by_type.setdefault(e["class"], e)
    types = sorted(by_type)
    picks = [by_type[types[i * len(types) // n]] for i in range(n)]
    out = []
    for e in picks:
        path = root / e["path"]
        if not path.is_file():
            return None
        frames = [(ts, fr) for ts, lt, fr in read_frames(path) if lt == 1]
        out.append(DeviceCapture(e["path"], e["mac"], e["class"], frames))
    return out


def builtin_device_captures(n: int = 2) -> list[DeviceCapture]:
    from topologies.builtin_devices import KINDS, device_frames
    kinds = sorted(KINDS)
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        mac = f"02:1e:00:00:00:{i + 1:02x}"
        out.append(DeviceCapture(f"built-in:{kind}", mac, None,
                                 [(ts, bytes(f)) for ts, f in device_frames(mac, kind, seed=i)]))
    return out


def enough_frames(cap: DeviceCapture, bundle_dir: Path = DEVICE_BUNDLE, extra: int = 4
                  ) -> list[tuple[float, bytes]]:
    """The capture's frames up to the one that fills the model's windows (+ ``extra``)."""
    from classifier.bundle import load_bundle
    from classifier.devices import DeviceTrack, parse_mac
    from classifier.evaluate_devices import device_options
    b = load_bundle(bundle_dir)
    track = DeviceTrack(parse_mac(cap.mac), b.preprocess, int(device_options(b)["windows"]))
    for i, (ts, fr) in enumerate(cap.frames):
        track.add(ts, fr)
        if track.full:
            return cap.frames[:i + 1 + extra]
    return cap.frames


def replay_device(cap: DeviceCapture, frames, dev_sock, peer_sock, max_gap: float = 0.2) -> int:
    """Send each frame from the end that sent it in the capture; returns frames sent."""
    mac = bytes.fromhex(cap.mac.replace(":", ""))
    prev = None
    for ts, fr in frames:
        if prev is not None:
            time.sleep(min(max(0.0, ts - prev), max_gap))
        prev = ts
        (dev_sock if fr[6:12] == mac else peer_sock).send(fr)
    return len(frames)


def _probe_frames(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str):
    from scapy.all import BOOTP, DHCP, DNS, DNSQR, IP, TCP, UDP, Ether
    macb = bytes.fromhex(src_mac.replace(":", ""))
    dhcp = Ether(src=src_mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") \
        / UDP(sport=68, dport=67) / BOOTP(chaddr=macb) / DHCP(options=[("message-type", "discover"), "end"])
    dns = Ether(src=src_mac, dst=dst_mac) / IP(src=src_ip, dst=dst_ip) / UDP(sport=41000, dport=53) \
        / DNS(rd=1, qd=DNSQR(qname="setup.vendor.example"))
    syn = Ether(src=src_mac, dst=dst_mac) / IP(src=src_ip, dst=dst_ip) \
        / TCP(sport=42000, dport=443, flags="S", seq=1000)
    return bytes(dhcp), bytes(dns), bytes(syn)


def _arrived(sock, src_mac: str, dport: int, wait: float) -> bool:
    """Did a frame from ``src_mac`` to TCP/UDP port ``dport`` arrive within ``wait`` s?"""
    mac = bytes.fromhex(src_mac.replace(":", ""))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        try:
            fr = sock.recv(65535)
        except BlockingIOError:
            continue
        if len(fr) >= 38 and fr[6:12] == mac and fr[12:14] == b"\x08\x00":
            ihl = (fr[14] & 0x0F) * 4
            if int.from_bytes(fr[14 + ihl + 2:14 + ihl + 4], "big") == dport:
                return True
    return False


def _drain(sock) -> None:
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return


def _wait_devices(client, macs, until, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    devs: list[dict] = []
    while time.monotonic() < deadline:
        devs = [d for d in client.devices()["devices"] if d["mac"] in macs]
        if len(devs) == len(macs) and all(until(d) for d in devs):
            break
        time.sleep(0.3)
    return devs


def run_devices(report_dir: Path, data_dir: Path | None = None, policy: Path | None = None,
                bundle_dir: Path = DEVICE_BUNDLE, max_seconds: float = 15.0,
                max_gap: float = 0.2, lock: bool = True) -> dict:
    """Run the devices emulation; returns (and writes ``devices.json``) its result.
    ``lock``: take the Mininet lock (False: the caller holds it)."""
    from policies import DEFAULT_POLICY_PATH
    from topologies.controller import RyuProcess
    from topologies.dns_responder import DnsNamedCheck
    from topologies.mininet_net import build_net, mininet_lock, wait_connected
    from topologies.netns import packet_socket
    from topologies.ovs_service import OvsService
    from topologies.smart_home import INET_IPS, INET_MAC, SmartHomeTopo, device

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir else REPO.parent / "shared" / "data"
    caps = heldout_captures(data_dir, bundle_dir) or builtin_device_captures()
    source = ("held-out IoT Sentinel captures" if caps[0].type
              else "built-in captures (no iot-sentinel data or no heldout_captures.json)")
    pol = report_dir / "policy-devices.yaml"
    pol.write_text(devices_policy(Path(policy or DEFAULT_POLICY_PATH).read_text()))
    state = report_dir / "devices-state.json"
    state.unlink(missing_ok=True)      # a fresh home: no device known or approved yet
    hosts = [device("iot1"), device("iot2"), device("guest")]
    res: dict = {"source": source, "policy": str(pol), "bundle": str(bundle_dir),
                 "max_seconds": max_seconds}
    args = ["--egw-device-model", str(bundle_dir), "--egw-policy", str(pol),
            "--egw-wan-port", "egw1-eth1", "--egw-device-max-seconds", str(max_seconds),
            "--egw-device-state", str(state),
            "--egw-decision-log", str(report_dir / "decisions.jsonl"), "--noegw-wan-htb"]
    t_start = time.monotonic()
    with mininet_lock() if lock else nullcontext(), OvsService() as ovs, \
            RyuProcess(extra_args=args, log_path=report_dir / "ryu.log") as ryu:
        ovs.activate()
        client = ryu.client()
        client.wait_ready()
        net = build_net(SmartHomeTopo(devices=tuple(hosts)), ryu.of_port)
        try:
            net.start()
            if not wait_connected(net, 20):
                raise RuntimeError("the switch did not connect to the controller")
            inet = net.get("inet")
            peer = packet_socket(inet.pid, inet.defaultIntf().name)
            rx = packet_socket(inet.pid, inet.defaultIntf().name, receive=True)
            rows = []
            for h, cap in zip(("iot1", "iot2"), caps):
                node = net.get(h)
                node.defaultIntf().setMAC(cap.mac)
                sock = packet_socket(node.pid, node.defaultIntf().name)
                frames = enough_frames(cap, bundle_dir)
                t0 = time.monotonic()
                sent = replay_device(cap, frames, sock, peer, max_gap)
                sock.close()
                rows.append({"host": h, "mac": cap.mac, "capture": cap.source,
                             "true_type": cap.type, "frames_replayed": sent,
                             "replay_seconds": round(time.monotonic() - t0, 2)})
            macs = [r["mac"] for r in rows]
            devs = _wait_devices(client, macs, lambda d: d["state"] == "identified",
                                 max_seconds + 10)
            by_mac = {d["mac"]: d for d in devs}
            for r in rows:
                d = by_mac.get(r["mac"], {})
                r.update({k: d.get(k) for k in ("state", "type", "kind", "confidence",
                                                "packets_needed", "reason", "quarantined")})
                r["correct"] = None if r["true_type"] is None else r["type"] == r["true_type"]
            res["devices"] = rows
            # ---- quarantine: a new, unknown device -----------------------------------
            g = net.get("guest")
            gsock = packet_socket(g.pid, g.defaultIntf().name)
            dhcp, dns, syn = _probe_frames(g.MAC(), INET_MAC, g.IP(), INET_IPS["cloud"])
            gsock.send(dhcp)
            held = _wait_devices(client, [g.MAC()], lambda d: d["quarantined"], 5.0)
            q = {"mac": g.MAC(), "quarantined": bool(held and held[0]["quarantined"])}
            _drain(rx)
            gsock.send(dns)
            q["dns_reached_wan"] = _arrived(rx, g.MAC(), 53, 1.5)
            gsock.send(syn)
            q["tcp443_reached_wan_before_approval"] = _arrived(rx, g.MAC(), 443, 1.5)
            with DnsNamedCheck(inet, DNS_NAME, NAMED, OTHER) as named:
                q["dns_named"] = named.ask(g)
                q["opened_hosts"] = next((d["opened_hosts"] for d in client.devices()["devices"]
                                          if d["mac"] == g.MAC()), None)
                q["approve"] = client.approve_device(g.MAC())
                time.sleep(0.5)
                q["other_reached_after_approval"] = named.reaches(g, OTHER)
            _drain(rx)
            gsock.send(syn)
            q["tcp443_reached_wan_after_approval"] = _arrived(rx, g.MAC(), 443, 1.5)
            gsock.close()
            peer.close()
            rx.close()
            res["quarantine"] = q
            res["metrics"] = [ln for ln in client.metrics().splitlines()
                              if ln.startswith(("egw_devices", "egw_quarantine"))]
        finally:
            net.stop()
        res["ryu_log_tail"] = ryu.log_tail(15)
    res["wall_s"] = round(time.monotonic() - t_start, 1)
    (report_dir / "devices.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    return res


def devices_ok(res: dict) -> bool:
    """Every replayed device identified; the unknown one reached DNS, and the internet
    only once approved."""
    q = res.get("quarantine") or {}
    return bool(res.get("devices") and all(r["state"] == "identified" for r in res["devices"])
                and q.get("dns_reached_wan") and not q.get("tcp443_reached_wan_before_approval")
                and q.get("tcp443_reached_wan_after_approval"))


def print_devices(res: dict) -> None:
    took = f", {res['wall_s']} s" if res.get("wall_s") is not None else ""
    print(f"devices ({res['source']}{took}):")
    for r in res.get("devices", []):
        truth = f" (true: {r['true_type']})" if r["true_type"] else ""
        conf = r["confidence"] if r["confidence"] is not None else 0.0
        print(f"  {r['host']} {r['mac']}: {r['state']} as {r['type']}{truth}, confidence "
              f"{conf:.2f}, {r['packets_needed']} packets needed ({r['reason']})")
    q = res.get("quarantine")
    if q:
        print(f"  quarantine of {q['mac']} (unknown device): DNS reached the WAN: "
              f"{q['dns_reached_wan']}; TCP 443: {q['tcp443_reached_wan_before_approval']} "
              f"before approval, {q['tcp443_reached_wan_after_approval']} after")
        n = q.get("dns_named") or {}
        print(f"  hosts named in DNS answers: before asking {n.get('before')}, resolved "
              f"{n.get('resolved')}, then {n.get('named')}, another host {n.get('after')}; "
              f"after approval the other host: {q.get('other_reached_after_approval')}")
