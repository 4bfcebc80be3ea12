"""Preprocessing throughput (one process, one core): packets/s.

    .venv/bin/python benchmarks/bench_preprocess.py [--packets 200000] [--pcap FILE ...]

Without ``--pcap`` it writes a synthetic Ethernet pcap (IPv4 TCP and UDP
sessions of 10 packets, payloads 0-1400 bytes, a third of the TCP packets bare
ACKs) to a temporary folder. Stages, each timed from the file on disk:

- read:      ``pcapio.read_ip_packets`` (pcap records -> IP bytes)
- sessions:  read + ``sessions.split_sessions`` (parse, 5-tuple, idle timeout)
- <repr>:    read + sessions + ``Preprocess.vectorize_views`` (filter, mask, vector)
             for session784 and packet1480 - i.e. what ``egw dataset build`` does per file.
"""
from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.pcapio import read_ip_packets  # noqa: E402
from classifier.preprocess import Preprocess  # noqa: E402
from classifier.sessions import split_sessions  # noqa: E402


def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def synthetic_pcap(path: str, n_packets: int, seed: int = 0) -> int:
    rnd = random.Random(seed)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    eth = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00"
    n, t, sess = 0, 1_700_000_000.0, 0
    while n < n_packets:
        sess += 1
        c, s = bytes([10, 0, sess >> 8 & 255, sess & 255]), bytes([93, 184, 216, 34])
        udp = sess % 3 == 0
        sp, dp = 30000 + sess % 30000, 443 if not udp else 3478
        seq = [rnd.getrandbits(32), rnd.getrandbits(32)]
        for i in range(10):
            d = i % 2
            src, dst, a, b = (c, s, sp, dp) if d == 0 else (s, c, dp, sp)
            plen = 0 if (not udp and i % 3 == 2) else rnd.randint(1, 1400)
            payload = rnd.randbytes(plen)
            if udp:
                l4 = struct.pack("!HHHH", a, b, 8 + plen, 0) + payload
                proto = 17
            else:
                l4 = struct.pack("!HHIIBBHHH", a, b, seq[d], seq[1 - d], 0x50, 0x18, 8192, 0, 0) + payload
                seq[d] = (seq[d] + plen) & 0xFFFFFFFF
                proto = 6
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), n & 0xFFFF, 0, 64, proto, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
            frame = eth + ip + l4
            t += 0.001
            out.append(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame)
            n += 1
    with open(path, "wb") as fh:
        fh.write(b"".join(out))
    return n


def run_stage(name: str, paths: list[str], pre: Preprocess | None, split: bool) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    for p in paths:
        if not split:
            for _ in read_ip_packets(p):
                n += 1
            continue
        sessions = split_sessions(read_ip_packets(p), 60.0, True)
        n += sum(len(s.packets) for s in sessions)
        if pre is not None:
            for s in sessions:
                pre.vectorize_views([(pk[0], v, pk[2]) for pk, v in zip(s.packets, s.views)])
    return n, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=200_000, help="synthetic packets")
    ap.add_argument("--pcap", nargs="*", help="measure these captures instead")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.pcap:
            paths = args.pcap
            label = f"{len(paths)} capture(s)"
        else:
            paths = [os.path.join(tmp, "bench.pcap")]
            synthetic_pcap(paths[0], args.packets)
            label = f"synthetic Ethernet pcap, {args.packets} packets"
        print(f"bench_preprocess: {label}, one process, best of {args.repeat}")
        stages = [("read", None, False), ("read+sessions", None, True),
                  ("read+sessions+session784", Preprocess(repr="session784"), True),
                  ("read+sessions+packet1480", Preprocess(repr="packet1480"), True)]
        for name, pre, split in stages:
            best = None
            for _ in range(args.repeat):
                n, dt = run_stage(name, paths, pre, split)
                best = dt if best is None else min(best, dt)
            print(f"{name:<28} {n:>9} packets  {best:7.3f} s  {n / best:>12,.0f} packets/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
