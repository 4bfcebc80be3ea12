"""Packet-in path in-process: real held-out sessions replayed through GatewayEngine + LiteRT.

    .venv/bin/python benchmarks/bench_packet_in.py [--bundle DIR | --demo-bundle] [--per-class 20]
    .venv/bin/python benchmarks/bench_packet_in.py --code /path/to/other/checkout   # before/after

No switch, no Ryu: each session's packets, as Ethernet frames, go one by one through
``GatewayEngine.mirror_packet`` (+ ``flush`` when a session is ready, as egw.py does; ``tick``
when the capture passes the mirror time cap) with the capture's timestamps as the engine's
clock, until the session's rules are sent. Sessions are the bundle's held-out (test split)
sessions from ``../shared/data/iscx-apps`` (``topologies.heldout``), built-in synthetic ones when
that is absent. Prints, per true class and overall:

- packets: packet-ins from the session's first packet to its rule (handshake and empty
  segments count: the switch copies them too);
- ms: from the first packet to the rule: the capture's own time until the packet that
  completed the session's budget (or the time cap) plus the controller's handling of that
  packet-in (``flush`` or ``tick``: vectorize, LiteRT, policy, rules);
- filled: sessions whose mirror budget filled before their capture ended (the others are
  decided by the time cap, ``mirror_max_seconds``, with what they had);
- µs/mirror: this process's time in ``mirror_packet`` per packet-in (parse, session table,
  readiness); ms/decision: time in ``flush``/``tick`` per session (vectorize, LiteRT, policy,
  meters, rules, metrics, the decision log line).

``--code DIR`` imports the gateway from another checkout (e.g. the commit before parse-once)
to compare the handling cost on the same sessions.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MAC_C, MAC_S = b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01"
LAN, WAN = 1, 2


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def heldout_sessions(bundle, data: Path, per_class: int, seed: int = 1):
    """``({label: [CapturedSession]}, source text)``: the bundle's held-out sessions."""
    from topologies import replay as rp

    apps = data / "iscx-apps"
    if apps.is_dir():
        from topologies.heldout import heldout_filter, load_taxonomy_map

        keep, how = heldout_filter(bundle, apps)
        chosen = rp.load_sessions(apps, bundle.labels, taxonomy=load_taxonomy_map(data),
                                  keep=keep, per_class=per_class, seed=seed)
        return chosen, f"{apps} ({how})"
    from topologies.builtin_captures import builtin_sessions

    return builtin_sessions(bundle.labels, per_class=per_class), "built-in synthetic sessions"


def replay_session(bundle, enforce, cs, mirror_max_packets: int, mirror_max_seconds: float):
    """One session through a fresh engine: ``dict`` of what it took to its rule."""
    from ryu_apps.gateway.engine import GatewayEngine

    eng = GatewayEngine(bundle.preprocess, bundle.classify_scored, enforce, wan_port=WAN,
                        mirror_max_packets=mirror_max_packets,
                        mirror_max_seconds=mirror_max_seconds, clock=lambda: 0.0)
    t0 = cs.packets[0][0]
    eng.switch_connected(fresh=True, now=0.0)
    mirror = decide = 0.0              # seconds in mirror_packet / in flush and tick
    n = 0
    decided_at = None
    msgs = []
    for ts, ip, d in cs.packets:
        now = ts - t0
        if now >= mirror_max_seconds:      # the engine's tick would have decided it first
            break
        fr = (MAC_S + MAC_C if d == 0 else MAC_C + MAC_S) + b"\x08\x00" + ip
        c0 = time.perf_counter()
        eng.mirror_packet(LAN if d == 0 else WAN, fr, now=now)
        c1 = time.perf_counter()
        msgs = eng.flush(now=now) if eng.has_pending() else []
        decide += time.perf_counter() - c1
        mirror += c1 - c0
        n += 1
        if msgs:                           # the session's rules (and meter)
            decided_at = now
            break
    if decided_at is None:                 # not ready when the capture ended: time cap
        c1 = time.perf_counter()
        eng.tick(now=mirror_max_seconds)
        decide += time.perf_counter() - c1
        decided_at = mirror_max_seconds
    s = eng.sessions()[0]
    return {"label": cs.label, "predicted": s["class"], "reason": s["reason"],
            "packets": n, "ms": (decided_at + decide) * 1e3, "mirror_s": mirror,
            "decide_s": decide, "packet_ins": n}


def enforcer(policy: Path | None = None):
    import functools

    from policies.enforcement import enforcement_for
    from policies.loader import load_policy

    return functools.partial(enforcement_for,
                             load_policy(policy or REPO / "policies" / "smart_home.yaml"))


def run(bundle_dir: Path | None, per_class: int, data: Path, mirror_max_packets: int = 32,
        mirror_max_seconds: float = 3.0, policy: Path | None = None, repeat: int = 3,
        out=print) -> dict:
    from classifier.bundle import load_bundle

    bundle = load_bundle(bundle_dir) if bundle_dir else load_bundle()
    enforce = enforcer(policy)
    chosen, source = heldout_sessions(bundle, data, per_class)
    sessions = [cs for label in sorted(chosen) for cs in chosen[label]]
    out(f"bundle {bundle.path} ({bundle.model_file.name}, {bundle.preprocess.repr}, budget "
        f"{bundle.preprocess.mirror_budget()}); {len(sessions)} sessions from {source}")
    best = None
    for _ in range(repeat):           # best of `repeat` for the CPU cost (shared cores)
        rows = [replay_session(bundle, enforce, cs, mirror_max_packets, mirror_max_seconds)
                for cs in sessions]
        tot = sum(r["mirror_s"] + r["decide_s"] for r in rows)
        if best is None or tot < best[0]:
            best = (tot, rows)
    rows = best[1]
    per = defaultdict(list)
    for r in rows:
        per[r["label"]].append(r)
    per["all"] = rows
    out(f"{'class':14} {'n':>3} {'right':>5} {'filled':>6} {'packets med/p99':>15} "
        f"{'ms med/p99':>17} {'µs/mirror':>9} {'ms/decision':>11}")
    res = {}
    for label in sorted(per, key=lambda x: (x == "all", x)):
        rs = per[label]
        pk = [r["packets"] for r in rs]
        ms = [r["ms"] for r in rs]
        n_in = sum(r["packet_ins"] for r in rs)
        res[label] = {
            "sessions": len(rs), "right": sum(r["predicted"] == r["label"] for r in rs),
            "filled": sum(r["reason"] == "model" for r in rs),
            "packets_med": statistics.median(pk), "packets_p99": pct(pk, 99),
            "ms_med": statistics.median(ms), "ms_p99": pct(ms, 99), "packet_ins": n_in,
            "us_per_mirror": sum(r["mirror_s"] for r in rs) / max(1, n_in) * 1e6,
            "ms_per_decision": sum(r["decide_s"] for r in rs) / len(rs) * 1e3}
        x = res[label]
        out(f"{label:14} {len(rs):>3} {x['right']:>5} {x['filled']:>6} "
            f"{x['packets_med']:>7.0f}/{x['packets_p99']:<7.0f} {x['ms_med']:>8.1f}/"
            f"{x['ms_p99']:<8.1f} {x['us_per_mirror']:>9.1f} {x['ms_per_decision']:>11.2f}")
    a = res["all"]
    out(f"first packet -> rule: median {a['ms_med']:.1f} ms, p99 {a['ms_p99']:.1f} ms "
        f"({len(rows) - a['filled']} of {len(rows)} sessions not ready when their capture "
        f"ended: decided by the time cap); mirror_packet {a['us_per_mirror']:.1f} µs per "
        f"packet-in over {a['packet_ins']}, flush/tick {a['ms_per_decision']:.2f} ms per session")
    return res


def synthetic(n_packets: int, sessions: int = 50, repeat: int = 3, out=print) -> float:
    """µs per ``mirror_packet`` on UDP sessions of ``n_packets`` 4-byte datagrams, with a
    session784 l7 preprocess whose budget (784 bytes) they never fill before the packet cap
    (``mirror_max_packets = n_packets``): how the packet-in cost grows with the budget."""
    import struct
    from types import SimpleNamespace

    from classifier.preprocess import Preprocess
    from topologies.replay import CapturedSession

    pre = Preprocess(repr="session784", layers="l7", max_packets=None)
    model = SimpleNamespace(preprocess=pre, classify=lambda b: [("x", 1.0)] * len(b))
    enforce = enforcer()
    css = []
    for i in range(sessions):
        pk = []
        for k in range(n_packets):
            d = k % 2
            ports = (40000 + i, 3478) if d == 0 else (3478, 40000 + i)
            udp = struct.pack("!HHHH", *ports, 12, 0) + bytes([k % 256]) * 4
            src, dst = (b"\x0a\0\0\x02", b"\xac\x10\0\x01")[::1 if d == 0 else -1]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 32, k, 0, 64, 17, 0, src, dst) + udp
            pk.append((k * 0.001, ip, d))
        css.append(CapturedSession("x", "synthetic", i, pk))
    best = min(sum(replay_session(model, enforce, cs, n_packets, 3.0)["mirror_s"]
                   for cs in css) for _ in range(repeat))
    us = best / (sessions * n_packets) * 1e6      # each session: n_packets packet-ins
    out(f"synthetic: {sessions} UDP sessions of {n_packets} packets, budget not filled: "
        f"mirror_packet {us:.1f} µs per packet-in")
    return us


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bundle", type=Path, help="model bundle (default: the embedded default)")
    g.add_argument("--demo-bundle", action="store_true",
                   help="the tiny demo bundle (ryu_apps/gateway/demo_bundle.py)")
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3, help="best of N for the handling cost")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--mirror-max-packets", type=int, default=32)
    p.add_argument("--code", type=Path, help="import the gateway from this checkout")
    p.add_argument("--synthetic", default="",
                   help="also time mirror_packet on synthetic sessions of these lengths "
                   "(comma-separated, e.g. 8,32,128)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(args.code.resolve() if args.code else REPO))
    bundle = args.bundle
    if args.demo_bundle:
        from ryu_apps.gateway.demo_bundle import cached

        bundle = cached()
    import ryu_apps

    print(f"gateway code: {Path(ryu_apps.__file__).parents[1]}")
    run(bundle, args.per_class, args.data, args.mirror_max_packets, repeat=args.repeat)
    for n in filter(None, args.synthetic.split(",")):
        synthetic(int(n), repeat=args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
