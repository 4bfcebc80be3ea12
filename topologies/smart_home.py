"""Smart-home topologies: one gateway switch, device hosts, a WAN link to the internet.

::

    bpm ─┐
    camera ─┤
    tv ─────┤            WAN (egw1-eth1, bottleneck shaped by the gateway's HTB)
    phone ──┼── egw1 ───────────────────────────────── inet (servers: 10.0.0.200-203)
    laptop ─┤
    guest ──┤
    iot1..n ┘

The WAN link is always the gateway switch's first port (``<switch>-eth1``),
so the app is started with ``--egw-wan-port egw1-eth1``. The internet side is
one host with several addresses, one per service (cloud, CDN, voice relay,
peer), which keeps the gateway switch the only switch in the home.

From Python: ``SmartHomeTopo()`` (or ``MultiHomeTopo(homes=3)``); with Mininet's
own CLI::

    mn --custom topologies/smart_home.py --topo smarthome \\
       --switch ovs,datapath=user --link tcu --controller remote,port=6653

Link delay needs the netem qdisc; this machine's kernel has only HTB and TBF,
so ``delay_ms`` is applied only where netem exists (see :func:`netem_available`).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from mininet.topo import Topo


@dataclass(frozen=True)
class Device:
    name: str
    role: str
    ip: str
    mac: str
    replay: tuple[str, ...] = ()       # traffic classes replayed from real captures
    iot: bool = False                  # replays IoT Sentinel captures of one device
    notes: str = ""


INET_IPS = {"cloud": "10.0.0.200", "cdn": "10.0.0.201", "voice": "10.0.0.202",
            "peer": "10.0.0.203"}
INET_MAC = "02:00:00:00:00:c8"

DEVICES: tuple[Device, ...] = (
    Device("bpm", "blood-pressure monitor", "10.0.0.11", "02:00:00:00:00:0b",
           notes="small periodic real-time telemetry (latency probe)"),
    Device("camera", "IP camera", "10.0.0.12", "02:00:00:00:00:0c",
           notes="continuous upstream video (rate-limited by a device override)"),
    Device("tv", "smart TV", "10.0.0.13", "02:00:00:00:00:0d", replay=("streaming",)),
    Device("phone", "phone / voice assistant", "10.0.0.14", "02:00:00:00:00:0e",
           replay=("voip",)),
    Device("laptop", "laptop", "10.0.0.15", "02:00:00:00:00:0f",
           replay=("chat", "email", "file_transfer"),
           notes="also the bulk upload that saturates the uplink"),
    Device("guest", "guest device", "10.0.0.16", "02:00:00:00:00:10", replay=("p2p",)),
    Device("iot1", "smart plug", "10.0.0.21", "02:00:00:00:00:15", iot=True),
    Device("iot2", "IoT hub", "10.0.0.22", "02:00:00:00:00:16", iot=True),
)


def device(name: str) -> Device:
    for d in DEVICES:
        if d.name == name:
            return d
    raise KeyError(name)


def netem_available() -> bool:
    out = subprocess.run(["modinfo", "sch_netem"], capture_output=True)
    return out.returncode == 0


class SmartHomeTopo(Topo):
    """One home: gateway switch ``egw1``, the devices of :data:`DEVICES`, ``inet``."""

    def build(self, switch: str = "egw1", prefix: str = "", subnet: int = 0,
              delay_ms: float = 0.0, devices: tuple[Device, ...] = DEVICES):
        sw = self.addSwitch(switch)
        inet = self.addHost(f"{prefix}inet", ip=_ip(INET_IPS["cloud"], subnet) + "/24",
                            mac=_mac(INET_MAC, subnet))
        wan_opts = {}
        if delay_ms and netem_available():
            wan_opts["delay"] = f"{delay_ms}ms"
        self.addLink(sw, inet, **wan_opts)          # egw1-eth1: the WAN port
        for d in devices:
            h = self.addHost(f"{prefix}{d.name}", ip=_ip(d.ip, subnet) + "/24",
                             mac=_mac(d.mac, subnet))
            self.addLink(h, sw)


class MultiHomeTopo(Topo):
    """Several homes, each a gateway switch with its own devices and WAN host.

    Each home is its own L2 island (no links between homes), so one controller
    (or one per home) manages gateways ``egw1..egwN`` independently.
    """

    def build(self, homes: int = 3, devices: tuple[Device, ...] = DEVICES[:4]):
        for i in range(1, homes + 1):
            SmartHomeTopo.build(self, switch=f"egw{i}", prefix=f"h{i}", subnet=i - 1,
                                devices=devices)


def _ip(ip: str, subnet: int) -> str:
    a, b, c, d = ip.split(".")
    return f"{a}.{b}.{int(c) + subnet}.{d}"


def _mac(mac: str, subnet: int) -> str:
    parts = mac.split(":")
    parts[1] = f"{subnet:02x}"
    return ":".join(parts)


topos = {"smarthome": SmartHomeTopo, "multihome": MultiHomeTopo}
