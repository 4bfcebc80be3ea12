"""Replay real captured sessions through the gateway, both directions from the right ends.

1. :func:`load_sessions` reads class folders of captures (``iscx-apps`` with its
   taxonomy, or any folder of per-class captures) with the classifier's own
   reader and session splitter, keeps IPv4 TCP/UDP sessions that carry
   application payload (service chatter and payload-free sessions are what the
   gateway forwards without classifying), and can restrict them to one split
   side (the test split: sessions the model never saw).
2. :func:`rewrite` maps each session onto the topology: the client becomes the
   device host (its address, its MAC, a fresh ephemeral port), the server one
   of the internet host's addresses. Payloads, server ports, TCP/UDP headers
   and the recorded order are kept; checksums are recomputed.
3. :class:`Replayer` holds an ``AF_PACKET`` socket in every host involved
   (:mod:`topologies.netns`) and sends each packet from the end that sent it
   in the capture, in the recorded order, interleaving sessions; it listens on
   the receiving ends and reports, per session, how many packets of each
   direction arrived.
"""
from __future__ import annotations

import logging
import random
import select
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)


@dataclass
class CapturedSession:
    label: str
    source: str
    index: int                              # position among the sessions of its file
    packets: list[tuple[float, bytes, int]]  # (ts, ip_bytes, direction 0=client→server)


@dataclass
class ReplaySession:
    sid: int
    label: str
    device: str
    server: str
    proto: int
    client_port: int
    server_port: int
    frames: list[tuple[int, bytes, bytes]]   # (direction, ethernet frame, match key)
    source: str = ""
    sent: list[int] = field(default_factory=lambda: [0, 0])
    received: list[int] = field(default_factory=lambda: [0, 0])
    sent_at: dict[int, float] = field(default_factory=dict)   # frame index -> send time (CLOCK_MONOTONIC, as the gateway)
    arrived_at: dict[int, float] = field(default_factory=dict)  # frame index -> arrival (CLOCK_MONOTONIC)


def load_sessions(root: str | Path, classes: Iterable[str], taxonomy: dict | None = None,
                  keep: Callable[[CapturedSession], bool] | None = None,
                  per_class: int = 20, seed: int = 0, min_payload_packets: int = 2,
                  ) -> dict[str, list[CapturedSession]]:
    """Up to ``per_class`` replayable sessions per wanted class, chosen at random (seeded)."""
    from classifier.filtering import FilterOptions, SessionFilter
    from classifier.pcapio import read_ip_packets
    from classifier.sessions import split_sessions

    root = Path(root)
    wanted = set(classes)
    folders: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        label = sub.name
        if taxonomy:
            label = next((cat for cat, names in taxonomy.items() if sub.name in names), None)
        if label in wanted:
            folders.setdefault(label, []).extend(
                sorted(f for f in sub.iterdir() if f.suffix in (".pcap", ".pcapng")))
    rng = random.Random(seed)
    out: dict[str, list[CapturedSession]] = {}
    for label, files in folders.items():
        pool: list[CapturedSession] = []
        for f in files:
            for i, s in enumerate(split_sessions(read_ip_packets(f))):
                views = s.views
                if views[0].version != 4:
                    continue
                filt = SessionFilter(FilterOptions())
                usable = sum(filt.usable(v, d) for v, (_, _, d) in zip(views, s.packets))
                if usable < min_payload_packets:
                    continue
                cs = CapturedSession(label, str(f), i, s.as_tuples())
                if keep is None or keep(cs):
                    pool.append(cs)
        rng.shuffle(pool)
        out[label] = pool[:per_class]
        log.info("replay: %s: %d sessions chosen of %d eligible", label, len(out[label]),
                 len(pool))
    return out


def rewrite(cs: CapturedSession, sid: int, device: str, client_ip: str, client_mac: str,
            server_ip: str, server_mac: str, client_port: int) -> ReplaySession:
    """Map one captured IPv4 session onto the topology's addresses (see module doc)."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    frames = []
    proto = sport0 = dport0 = 0
    for _, raw, direction in cs.packets:
        pkt = IP(raw)
        l4 = pkt[TCP] if TCP in pkt else pkt[UDP] if UDP in pkt else None
        if l4 is None:
            continue
        if not proto:
            proto = pkt.proto
            sport0, dport0 = (l4.sport, l4.dport) if direction == 0 else (l4.dport, l4.sport)
        if direction == 0:
            pkt.src, pkt.dst, l4.sport = client_ip, server_ip, client_port
            src_mac, dst_mac = client_mac, server_mac
        else:
            pkt.src, pkt.dst, l4.dport = server_ip, client_ip, client_port
            src_mac, dst_mac = server_mac, client_mac
        del pkt.chksum
        del l4.chksum
        if UDP in pkt:
            del pkt[UDP].len
        frame = bytes(Ether(src=src_mac, dst=dst_mac) / pkt)
        frames.append((direction, frame, match_key(frame)))
    return ReplaySession(sid, cs.label, device, server_ip, proto, client_port, dport0, frames,
                         source=f"{Path(cs.source).name}#{cs.index}")


def match_key(frame: bytes) -> bytes:
    """Identify a frame after the switch: addresses, ports and payload, not TOS/TTL/checksums."""
    ip = frame[14:]
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return b""
    ihl = (ip[0] & 0x0F) * 4
    proto = ip[9]
    l4 = ip[ihl:]
    if proto == 6 and len(l4) >= 20:
        body = l4[:4] + l4[4:16] + l4[(l4[12] >> 4) * 4:]
    elif proto == 17 and len(l4) >= 8:
        body = l4[:4] + l4[8:]
    else:
        return b""
    return ip[12:20] + bytes([proto]) + zlib.crc32(body).to_bytes(4, "big") + body[:4]


class Replayer:
    """Send sessions' frames from the right hosts in recorded order; count what arrives.

    ``hosts`` maps a host name to ``(pid, ifname)``. Each session is
    ``ReplaySession`` with ``device`` (client host name) and a server host
    name given by ``server_host``.
    """

    def __init__(self, hosts: dict[str, tuple[int, str]], server_host: str):
        from topologies.netns import packet_socket

        self.server_host = server_host
        self.tx = {name: packet_socket(pid, ifn) for name, (pid, ifn) in hosts.items()}
        self.rx = {name: packet_socket(pid, ifn, receive=True)
                   for name, (pid, ifn) in hosts.items()}
        self._rx_host = {sock.fileno(): name for name, sock in self.rx.items()}
        # match key -> [(session, frame index)]: a capture may hold the same frame twice
        # (retransmissions), each arrival is credited to the next frame not yet seen.
        self._expect: dict[bytes, list[tuple[ReplaySession, int]]] = {}

    def close(self) -> None:
        for s in (*self.tx.values(), *self.rx.values()):
            s.close()

    def replay(self, sessions: list[ReplaySession], gap: float = 0.02,
               concurrency: int = 8, settle: float = 1.0,
               on_progress: Callable[[int, int], None] | None = None) -> None:
        """Replay all sessions, ``concurrency`` at a time, ``gap`` seconds between a
        session's packets (the captures' own timestamps are synthetic in iscx-apps)."""
        for s in sessions:
            for idx, (_, _, key) in enumerate(s.frames):
                if key:
                    self._expect.setdefault(key, []).append((s, idx))
        queue = list(sessions)
        active: list[tuple[ReplaySession, int, float]] = []  # (session, next index, due)
        done = 0
        while queue or active:
            now = time.monotonic()
            while queue and len(active) < concurrency:
                active.append((queue.pop(0), 0, now))
            nxt = []
            for s, i, due in active:
                if due <= now:
                    direction, frame, _ = s.frames[i]
                    sender = s.device if direction == 0 else self.server_host
                    try:
                        self.tx[sender].send(frame)
                        s.sent[direction] += 1
                        s.sent_at[i] = time.monotonic()
                    except OSError as exc:
                        log.debug("send failed: %s", exc)
                    i += 1
                    due = now + gap
                if i < len(s.frames):
                    nxt.append((s, i, due))
                else:
                    done += 1
                    if on_progress:
                        on_progress(done, len(sessions))
            active = nxt
            self._receive(timeout=min(gap, 0.005))
        end = time.monotonic() + settle
        while time.monotonic() < end:
            self._receive(timeout=0.05)

    def _receive(self, timeout: float) -> None:
        r, _, _ = select.select(list(self.rx.values()), [], [], timeout)
        for sock in r:
            while True:
                try:
                    data, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                # Outgoing copies (PACKET_OUTGOING = 4) are our own sends: skip them.
                if len(addr) > 2 and addr[2] == 4:
                    continue
                host = self._rx_host[sock.fileno()]
                for s, idx in self._expect.get(match_key(data), ()):
                    direction = s.frames[idx][0]
                    # Count it only at its destination (a flood also reaches other hosts).
                    want = self.server_host if direction == 0 else s.device
                    if host == want and idx not in s.arrived_at:
                        s.received[direction] += 1
                        s.arrived_at[idx] = time.monotonic()
                        break
