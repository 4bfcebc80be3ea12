"""Built-in device setup captures (scapy), for when ../shared/data/iot-sentinel is absent
(CI) and for tests: DHCP, DNS, SSDP and one TCP conversation of a device MAC, in a
behaviour that depends on the device's *kind*. They exercise the whole path (replay,
copy rules, windows, the device model, quarantine); they are not real device traffic,
so the type the model gives them says nothing about its accuracy.

    from topologies.builtin_devices import write_device_folder
    write_device_folder(tmp_path / "CamA", "02:aa:00:00:00:01", "camera", captures=4)
"""
from __future__ import annotations

import random
from pathlib import Path

from scapy.all import BOOTP, DHCP, DNS, DNSQR, IP, TCP, UDP, Ether, Raw
from scapy.utils import PcapWriter

GW_MAC = "02:00:00:00:00:fe"
GW_IP, RESOLVER = "192.168.1.1", "192.168.1.1"
#: kind -> (TCP server port, payload the device sends, DNS name it asks for)
KINDS = {
    "camera": (554, b"OPTIONS rtsp://cam/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n", "cam.vendor.example"),
    "plug": (8883, b"\x10\x1c\x00\x04MQTT\x04\x02\x00\x3c\x00\x10plug-telemetry", "mqtt.plugs.example"),
}


def device_frames(mac: str, kind: str, ip: str = "192.168.1.50", seed: int = 0, t0: float = 1000.0):
    """``[(ts, scapy Ether frame)]``: one setup run of a device of ``kind``."""
    rng = random.Random(seed)
    port, hello, name = KINDS[kind]
    macb = bytes.fromhex(mac.replace(":", ""))
    out, t = [], t0

    def add(f):
        nonlocal t
        out.append((t, f))
        t += 0.01 + rng.random() * 0.01

    host = f"{kind}-{mac.replace(':', '')[-6:]}".encode()
    for mtype in ("discover", "request"):
        add(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67) / BOOTP(chaddr=macb, xid=rng.randrange(1 << 32))
            / DHCP(options=[("message-type", mtype), ("client_id", b"\x01" + macb),
                            ("hostname", host), "end"]))
        add(Ether(src=GW_MAC, dst=mac) / IP(src=GW_IP, dst=ip) / UDP(sport=67, dport=68)
            / BOOTP(op=2, yiaddr=ip, chaddr=macb, xid=rng.randrange(1 << 32))
            / DHCP(options=[("message-type", "offer" if mtype == "discover" else "ack"), "end"]))
    add(Ether(src=mac, dst=GW_MAC) / IP(src=ip, dst=RESOLVER) / UDP(sport=rng.randrange(40000, 60000), dport=53)
        / DNS(id=rng.randrange(1 << 16), rd=1, qd=DNSQR(qname=name)))
    add(Ether(src=mac, dst="01:00:5e:7f:ff:fa") / IP(src=ip, dst="239.255.255.250") / UDP(sport=1900, dport=1900)
        / Raw(b"NOTIFY * HTTP/1.1\r\nLOCATION: http://" + ip.encode() + b":49153/setup.xml\r\nUSN: uuid:"
              + mac.replace(":", "").encode() + b"::" + kind.encode() + b"\r\n\r\n"))
    sport, seq = rng.randrange(40000, 60000), rng.randrange(1 << 31)
    srv = "93.184.216.34"
    add(Ether(src=mac, dst=GW_MAC) / IP(src=ip, dst=srv) / TCP(sport=sport, dport=port, flags="S", seq=seq))
    add(Ether(src=GW_MAC, dst=mac) / IP(src=srv, dst=ip) / TCP(sport=port, dport=sport, flags="SA", seq=7, ack=seq + 1))
    add(Ether(src=mac, dst=GW_MAC) / IP(src=ip, dst=srv) / TCP(sport=sport, dport=port, flags="PA", seq=seq + 1, ack=8)
        / Raw(hello))
    add(Ether(src=GW_MAC, dst=mac) / IP(src=srv, dst=ip) / TCP(sport=port, dport=sport, flags="PA", seq=8,
                                                              ack=seq + 1 + len(hello)) / Raw(b"OK " + kind.encode()))
    return [(ts, f.__class__(bytes(f))) for ts, f in out]


def write_frames(path, frames) -> str:
    w = PcapWriter(str(path), linktype=1, sync=True)
    for ts, f in frames:
        f.time = ts
        w.write(f)
    w.close()
    return str(path)


def write_device_folder(folder, mac: str, kind: str, captures: int = 4, seed: int = 0) -> Path:
    """An iot-sentinel style folder: ``Setup-A-<i>-STA.pcap`` files and ``_iotdevice-mac.txt``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_iotdevice-mac.txt").write_text(mac + "\n")
    for i in range(captures):
        write_frames(folder / f"Setup-A-{i + 1}-STA.pcap",
                     device_frames(mac, kind, ip=f"192.168.1.{50 + i}", seed=seed * 100 + i))
    return folder
