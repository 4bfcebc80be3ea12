"""Device fingerprints: the first packets a device sends or receives, selected by its MAC.

One implementation for the offline build (``egw dataset build --by device``) and the
gateway (``ryu_apps.gateway.devices``): :class:`DeviceTrack` takes a device's Ethernet
frames in arrival order and turns them into *windows*, each a ``kpackets`` sample of
``pre.k`` usable packets (the bundle's :class:`~classifier.preprocess.Preprocess`;
direction 0 = sent by the device, 1 = received by it).

Before a packet is parsed its identity is masked (:func:`mask_identity`), on top of the
session masking (addresses, ports if asked, TTL, IP ID, checksums, TCP counters):

- the device's MAC wherever it occurs after the IP header: the 6 raw bytes and its hex
  text (``aa:bb:cc:dd:ee:ff``, ``aa-bb-...``, ``aabbccddeeff``, either case), and the
  hex text of its last three bytes (names such as ``Philips-hue-ddeeff``);
- the device's IPv4 address (learned from what it sends) after the IP header, raw and
  as dotted text (an SSDP ``LOCATION: http://10.0.0.7:49153/``);
- in DHCP (UDP 67/68): transaction id, seconds, the four address fields, ``chaddr``, and
  the values of the options hostname (12), requested address (50), server id (54),
  client id (61) and client FQDN (81).

Masked bytes are zeroed in place, so lengths are unchanged. Non-IP frames (ARP, EAPOL)
never reach a window (``ip_from_frame``), as in the session path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.dataerrors import DatasetError
from classifier.filtering import SessionFilter
from classifier.packets import PROTO_UDP, ip_from_frame, parse
from classifier.preprocess import Preprocess

MAC_FILE = "_iotdevice-mac.txt"
BOOTP_PORTS = (67, 68)
DHCP_MAGIC = b"\x63\x82\x53\x63"
#: DHCP options whose values name the host or its addresses (RFC 2132, RFC 4702)
DHCP_IDENTITY_OPTIONS = (12, 50, 54, 61, 81)


def parse_mac(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` (or ``-``-separated, or bare hex) → 6 bytes; ValueError otherwise."""
    h = text.strip().replace(":", "").replace("-", "").replace(".", "")
    b = bytes.fromhex(h)
    if len(b) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return b


def format_mac(mac: bytes) -> str:
    return ":".join(f"{x:02x}" for x in mac)


def read_mac_file(folder: str | os.PathLike) -> bytes:
    """The device MAC of an iot-sentinel style folder (``_iotdevice-mac.txt``)."""
    p = Path(folder) / MAC_FILE
    try:
        return parse_mac(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read the device MAC: {exc.strerror or exc}") from None
    except ValueError:
        raise DatasetError(f"{p}: does not hold a MAC address like aa:bb:cc:dd:ee:ff") from None


def identity_tokens(mac: bytes, ipv4: bytes | None = None) -> list[bytes]:
    """The byte strings :func:`mask_identity` zeroes, longest first."""
    toks = {mac}
    for hx in (mac.hex(), mac.hex().upper()):
        pairs = [hx[i:i + 2] for i in range(0, 12, 2)]
        for sep in (":", "-", ""):
            toks.add(sep.join(pairs).encode())
        toks.add("".join(pairs[3:]).encode())
        toks.add(":".join(pairs[3:]).encode())
    if ipv4 and ipv4 != bytes(4):
        toks.add(ipv4)
        toks.add(".".join(str(x) for x in ipv4).encode())
    return sorted(toks, key=len, reverse=True)


def _zero_dhcp(b: bytearray, start: int) -> None:
    """Zero the identity fields of the BOOTP/DHCP message at ``b[start:]``."""
    if len(b) < start + 240:   # cut short: keep only op/htype/hlen/hops
        b[start + 4:] = bytes(max(0, len(b) - start - 4))
        return
    b[start + 4:start + 8] = bytes(4)       # xid
    b[start + 8:start + 10] = bytes(2)      # secs
    b[start + 12:start + 44] = bytes(32)    # ciaddr, yiaddr, siaddr, giaddr, chaddr
    if b[start + 236:start + 240] != DHCP_MAGIC:
        return
    i = start + 240
    while i < len(b):
        kind = b[i]
        if kind == 255:
            return
        if kind == 0:
            i += 1
            continue
        if i + 1 >= len(b):
            return
        ln = b[i + 1]
        if kind in DHCP_IDENTITY_OPTIONS:
            b[i + 2:i + 2 + ln] = bytes(min(ln, max(0, len(b) - i - 2)))
        i += 2 + ln


def mask_identity(ip: bytes, tokens: list[bytes]) -> bytes:
    """``ip`` with the device's identity zeroed after the IP header (see module doc)."""
    pv = parse(ip)
    if pv is None:
        return ip
    b = bytearray(ip)
    start = pv.ip_header_len
    body = bytes(b[start:])
    for t in tokens:
        i = body.find(t)
        while i >= 0:
            b[start + i:start + i + len(t)] = bytes(len(t))
            i = body.find(t, i + len(t))
    if pv.proto == PROTO_UDP and pv.transport_header_len and (
            pv.sport in BOOTP_PORTS or pv.dport in BOOTP_PORTS):
        _zero_dhcp(b, pv.payload_offset)
    return bytes(b)


@dataclass
class DeviceTrack:
    """One device's first usable packets, as windows (``add`` one frame at a time).

    ``windows``: how many windows of ``pre.k`` usable packets are kept; the device's
    decision takes the mean probability over them (:func:`aggregate`), so the gateway
    mirrors at most ``windows * pre.k`` usable packets of it."""

    mac: bytes
    pre: Preprocess
    windows: int = 1
    views: list = field(default_factory=list)
    frames: int = 0
    masked: int = 0   # the device's IP packets whose identity masking changed a byte
    ipv4: bytes | None = None

    def __post_init__(self) -> None:
        self._filter = SessionFilter(self.pre.filter)
        self._tokens = identity_tokens(self.mac)

    @property
    def budget(self) -> int:
        """Usable packets after which the track is full."""
        return self.windows * self.pre.k

    @property
    def full(self) -> bool:
        return len(self.views) >= self.budget

    def add(self, ts: float, frame: bytes, linktype: int = 1) -> bool:
        """Feed one frame (any; frames not to or from the device are ignored). Returns
        True when the frame was the device's and counted as a usable packet."""
        if self.full or len(frame) < 12:
            return False
        if frame[6:12] == self.mac:
            direction = 0
        elif frame[0:6] == self.mac:
            direction = 1
        else:
            return False
        self.frames += 1
        ip = ip_from_frame(frame, linktype)
        if ip is None:
            return False
        if direction == 0 and self.ipv4 is None and ip[0] >> 4 == 4 and ip[12:16] != bytes(4):
            self.ipv4 = bytes(ip[12:16])
            self._tokens = identity_tokens(self.mac, self.ipv4)
        m = mask_identity(ip, self._tokens)
        self.masked += m != ip
        pv = parse(m)
        if not self._filter.usable(pv, direction):
            return False
        self.views.append((ts, pv, direction))
        return True

    def vectors(self) -> np.ndarray:
        """``(n_windows, *pre.sample_shape)``: one row per non-empty window."""
        k = self.pre.k
        rows = [self.pre.vectorize_views(self.views[i:i + k])
                for i in range(0, min(len(self.views), self.budget), k)]
        rows = [r for r in rows if len(r)]
        if not rows:
            return np.zeros((0, *self.pre.sample_shape), np.float32)
        return np.concatenate(rows)


def aggregate(probs: np.ndarray) -> np.ndarray:
    """One device's decision from its windows' probabilities: their mean."""
    return probs.mean(axis=0)


def device_preprocess(k: int = 12, n_bytes: int = 100) -> Preprocess:
    """The device windows' defaults: kpackets, service traffic kept (DHCP, DNS, mDNS, SSDP
    and bare TCP handshakes are what a device does first), ports kept."""
    from classifier.filtering import FilterOptions
    return Preprocess(repr="kpackets", k=k, n_bytes=n_bytes, max_packets=None,
                      filter=FilterOptions(drop_chatter=False, drop_no_payload=False))
