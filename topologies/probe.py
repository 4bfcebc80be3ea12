"""UDP latency probe: small packets at a fixed rate, echoed back, RTT per packet.

Run inside Mininet hosts::

    python -m topologies.probe server --port 9000
    python -m topologies.probe client --dst 10.0.0.200 --port 9000 --rate 20 --duration 10

The client prints one JSON object: ``sent``, ``received``, ``rtt_ms`` (list,
in send order, lost packets omitted) and ``t`` (send time offsets, s). The
payload looks like real-time telemetry (a sequence number, a timestamp and
padding), so the gateway sees an ordinary UDP session with payload.
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time

HEADER = struct.Struct("!Id")


def serve(port: int, duration: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], 0.5)
        if r:
            data, addr = sock.recvfrom(2048)
            sock.sendto(data, addr)


def client(dst: str, port: int, rate: float, duration: float, size: int, sport: int) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if sport:
        sock.bind(("0.0.0.0", sport))
    sock.setblocking(False)
    interval = 1.0 / rate
    n = int(duration * rate)
    sent_at: dict[int, float] = {}
    rtts: dict[int, float] = {}
    pad = bytes((i * 7 + 3) & 0xFF for i in range(max(0, size - HEADER.size)))
    start = time.monotonic()
    for seq in range(n):
        target = start + seq * interval
        while True:
            now = time.monotonic()
            timeout = target - now
            if timeout <= 0:
                break
            r, _, _ = select.select([sock], [], [], timeout)
            if r:
                _drain(sock, sent_at, rtts)
        sent_at[seq] = time.monotonic()
        try:
            sock.sendto(HEADER.pack(seq, sent_at[seq]) + pad, (dst, port))
        except OSError:
            pass
        _drain(sock, sent_at, rtts)
    end = time.monotonic() + 1.0
    while time.monotonic() < end and len(rtts) < n:
        r, _, _ = select.select([sock], [], [], 0.05)
        if r:
            _drain(sock, sent_at, rtts)
    seqs = sorted(rtts)
    return {"sent": n, "received": len(rtts),
            "t": [round(sent_at[s] - start, 4) for s in seqs],
            "rtt_ms": [round(rtts[s] * 1000, 3) for s in seqs]}


def _drain(sock, sent_at, rtts) -> None:
    while True:
        try:
            data = sock.recv(2048)
        except BlockingIOError:
            return
        now = time.monotonic()
        if len(data) >= HEADER.size:
            seq, _ = HEADER.unpack_from(data)
            if seq in sent_at and seq not in rtts:
                rtts[seq] = now - sent_at[seq]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=9000)
    s.add_argument("--duration", type=float, default=3600)
    c = sub.add_parser("client")
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=int, default=9000)
    c.add_argument("--sport", type=int, default=0)
    c.add_argument("--rate", type=float, default=20.0, help="packets per second")
    c.add_argument("--duration", type=float, default=10.0)
    c.add_argument("--size", type=int, default=96, help="UDP payload bytes")
    a = p.parse_args(argv)
    if a.mode == "server":
        serve(a.port, a.duration)
    else:
        json.dump(client(a.dst, a.port, a.rate, a.duration, a.size, a.sport), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
