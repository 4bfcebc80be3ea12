"""A small built-in set of sessions, made with scapy, for when ../shared/data is absent.

They exercise the whole path (replay, mirroring, classification, enforcement)
on a fresh clone; they are not real application traffic, so the confusion
table they produce says nothing about the model's accuracy.
"""
from __future__ import annotations

import random

from topologies.replay import CapturedSession

# (protocol, server port, [(direction, payload size), ...], payload prefix)
SHAPES = {
    "voip": ("udp", 3478, [(0, 172), (1, 172)] * 5, b"\x80\x00"),
    "streaming": ("tcp", 443, [(0, 517), (1, 1400), (1, 1400), (1, 1400), (0, 90), (1, 1400)],
                  b"\x16\x03\x01"),
    "chat": ("tcp", 443, [(0, 230), (1, 120), (0, 80), (1, 64), (0, 96)], b"\x17\x03\x03"),
    "email": ("tcp", 993, [(1, 90), (0, 40), (1, 300), (0, 60), (1, 700)], b"\x16\x03\x01"),
    "file_transfer": ("tcp", 22, [(1, 40), (0, 40), (0, 1400), (0, 1400), (0, 1400), (1, 52)],
                      b"SSH-2.0-"),
    "p2p": ("tcp", 6881, [(0, 68), (1, 68), (0, 1400), (1, 1400), (0, 300)] * 2,
            b"\x13BitTorrent protocol"),
}


def builtin_sessions(classes, per_class: int = 3, seed: int = 0) -> dict[str, list[CapturedSession]]:
    from scapy.layers.inet import IP, TCP, UDP

    rng = random.Random(seed)
    out: dict[str, list[CapturedSession]] = {}
    for label in sorted(classes):
        if label not in SHAPES:
            continue
        proto, port, steps, prefix = SHAPES[label]
        sessions = []
        for n in range(per_class):
            cport = 40000 + rng.randrange(20000)
            seq = [rng.randrange(1 << 31), rng.randrange(1 << 31)]
            pkts = []
            for i, (d, size) in enumerate(steps):
                body = (prefix + bytes(rng.randrange(256) for _ in range(max(0, size - len(prefix)))))
                src, dst = ("192.0.2.10", "198.51.100.20") if d == 0 else ("198.51.100.20", "192.0.2.10")
                sp, dp = (cport, port) if d == 0 else (port, cport)
                if proto == "udp":
                    l4 = UDP(sport=sp, dport=dp)
                else:
                    l4 = TCP(sport=sp, dport=dp, flags="PA", seq=seq[d], ack=seq[1 - d])
                    seq[d] += len(body)
                pkt = IP(src=src, dst=dst, ttl=64) / l4 / body
                pkts.append((1000.0 + n + i * 0.01, bytes(pkt), d))
            sessions.append(CapturedSession(label, f"builtin/{label}", n, pkts))
        out[label] = sessions
    return out
