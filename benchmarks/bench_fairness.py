"""Flood fairness: one device floods new sessions while another device's sessions must
still be classified and enforced.

    sudo .venv/bin/python benchmarks/bench_fairness.py [--rate 3000] [--seconds 4]
         [--packet-in-rate 300] [--on-overload forward|drop]

Two runs on the same topology (flooder ``fl1``, device ``rt1``, internet host ``fwan``):
with the per-device new-session quota (``--egw-device-session-rate``) and without it.
In each, ``rt1`` first opens a p2p session (dropped by the policy), then the flood starts
and, one second into it, ``rt1`` opens a voip session while its p2p session keeps
sending. Prints, per run: packet-ins that reached the app, packets the switch's
controller meter dropped, whether the voip session was classified (class, reason) and
how many of its packets reached the internet host before its EF rule marked them (seen
at the receiver: the sender's view of time to decision), and how many of the p2p
session's packets reached the internet host during the flood (must be 0).

:func:`run_fairness` is used by tests/integration/test_robust_mininet.py.
"""
from __future__ import annotations

import argparse
import json
import random
import select
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_flood import (Flood, _csum, _get, _ip, _mac,  # noqa: E402
                                    controller_meter_drops, flood_home, metric,
                                    packet_in_deltas)
from topologies.netns import packet_socket  # noqa: E402

VOIP = b"VOIP" + bytes(28)                       # the demo bundle's voip payload
P2P = b"\x13BitTorrent protocol" + bytes(8)      # ... and its p2p one
P2P_PORTS, VOIP_PORTS, FLOOD_DPORT = (41000, 6881), (41001, 5004), 9999

POLICY = """version: 1
default: {action: allow, dscp: 0}
classes:
  voip: {dscp: EF}
  p2p: {action: drop, on_overload: %s}
wan:
  uplink_kbps: 100000
  default_class: besteffort
  classes:
    - {name: realtime, dscp: [EF], rate_kbps: 20000, prio: 0}
    - {name: besteffort, dscp: [CS0], rate_kbps: 80000, prio: 3}
"""


def udp_frame(src_mac, dst_mac, src_ip, dst_ip, sport, dport, payload, ident=0) -> bytes:
    udp = (sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
           + (8 + len(payload)).to_bytes(2, "big") + b"\0\0" + payload)
    ip = bytes([0x45, 0]) + (20 + len(udp)).to_bytes(2, "big") + ident.to_bytes(2, "big") \
        + b"\0\0" + bytes([64, 17]) + b"\0\0" + _ip(src_ip) + _ip(dst_ip)
    ip = ip[:10] + _csum(ip).to_bytes(2, "big") + ip[12:]
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x00" + ip + udp


class Counter:
    """Counts UDP frames arriving at one host, by destination port (a thread)."""

    def __init__(self, pid: int, ifname: str):
        self.sock = packet_socket(pid, ifname, receive=True)
        self.by_dport: dict[int, int] = {}
        self.marked: dict[int, int] = {}         # by destination port: DSCP EF (46)
        self._stop = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.1)
            while r:
                try:
                    f = self.sock.recv(2048)
                except BlockingIOError:
                    break
                if len(f) >= 42 and f[12:14] == b"\x08\x00" and f[23] == 17:
                    ihl = (f[14] & 15) * 4
                    dport = int.from_bytes(f[14 + ihl + 2:14 + ihl + 4], "big")
                    self.by_dport[dport] = self.by_dport.get(dport, 0) + 1
                    if f[15] >> 2 == 46:
                        self.marked[dport] = self.marked.get(dport, 0) + 1

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self.th.join(timeout=2)
        self.sock.close()
        return dict(self.by_dport)


def _session(url: str, device_ip: str, sport: int) -> dict | None:
    page = _get(f"{url}/egw/sessions?limit=1000")
    for s in page["sessions"]:
        if s["device_ip"] == device_ip and s["client_port"] == sport:
            return s
    return None


def run_fairness(ovs, sw: str, *, quota: bool = True, rate: float = 3000,
                 seconds: float = 4.0, packet_in_rate: int = 300, on_overload: str = "forward",
                 session_rate: float = 20, session_burst: int = 50,
                 workdir: str | None = None, model: str | None = None) -> dict:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="egw-fair-"))
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY % on_overload)
    args = ["--noegw-wan-htb", "--egw-wan-port", f"{sw}-eth3", "--egw-policy", str(policy),
            "--egw-packet-in-rate", str(packet_in_rate), "--egw-stats-interval", "1",
            "--egw-device-session-rate", str(session_rate if quota else 0),
            "--egw-device-session-burst", str(session_burst),
            *(["--egw-model", model] if model else [])]
    res: dict = {"quota": quota, "offered_rate": rate, "seconds": seconds,
                 "packet_in_rate": packet_in_rate, "on_overload": on_overload,
                 "device_session_rate": session_rate if quota else 0,
                 "device_session_burst": session_burst}
    with flood_home(sw, args, workdir) as (ryu, fl, rt, wan):
        url = ryu.rest_url
        counter = Counter(wan.pid, wan.defaultIntf().name)
        rt_sock = packet_socket(rt.pid, rt.defaultIntf().name)

        rng = random.Random(0)

        def rt_send(sport, dport, payload, i):
            # the demo model learnt its prefixes followed by random bytes
            tail = bytes(rng.getrandbits(8) for _ in range(40))
            rt_sock.send(udp_frame(rt.MAC(), wan.MAC(), rt.IP(), wan.IP(), sport, dport,
                                   payload + tail, ident=i))

        # before the flood: rt1's p2p session, classified and dropped
        for i in range(3):
            rt_send(*P2P_PORTS, P2P, i)
            time.sleep(0.02)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            s = _session(url, rt.IP(), P2P_PORTS[0])
            if s and s["state"] == "enforced":
                break
            time.sleep(0.1)
        res["p2p_before"] = {k: s.get(k) for k in ("class", "action")} if s else None
        counter.by_dport.pop(P2P_PORTS[1], None)       # from here on, none may arrive
        m0 = _get(f"{url}/metrics", raw=True)
        flood = Flood(fl, wan, rate, seconds, dport=FLOOD_DPORT)
        time.sleep(1.0)
        # one second into the flood: rt1 opens a voip session, its p2p session goes on
        n = int(max(1.0, seconds - 1.5) * 50)
        for i in range(n):
            rt_send(*VOIP_PORTS, VOIP, i)
            rt_send(*P2P_PORTS, P2P, 100 + i)
            time.sleep(0.02)
        flood.join()
        rt_sock.close()
        time.sleep(2.5)                                  # flow stats (1 s) and stragglers
        arrived = counter.stop()
        m1 = _get(f"{url}/metrics", raw=True)
        stats = list(_get(f"{url}/egw/stats").values())[0]
        voip = _session(url, rt.IP(), VOIP_PORTS[0])
        p2p = _session(url, rt.IP(), P2P_PORTS[0])
        res["packet_ins"] = {k: int(v) for k, v in packet_in_deltas(
            m0, m1, ("mirror", "duplicate", "ignored", "shed", "overload")).items()}
        res["sent"], res["achieved_rate"] = flood.sent, flood.achieved_rate
        res["overloaded"] = stats.get("overloaded", [])
        res["overloads"] = int(metric(m1, "egw_overloads_total"))
        res["meter_stats"], res["controller_meter_dropped"] = controller_meter_drops(ovs, sw)
        res["voip_sent"] = res["p2p_sent_during"] = n
        res["voip"] = None if voip is None else {
            k: voip.get(k) for k in ("class", "reason", "action", "dscp", "mirrored_packets",
                                     "state")}
        if voip and voip.get("classified_at") is not None:
            res["voip"]["first_packet_to_rule_ms"] = round(
                1000 * (voip["classified_at"] - voip["first_seen"]), 1)
        res["p2p"] = None if p2p is None else {k: p2p.get(k) for k in
                                               ("class", "action", "packets", "state")}
        # the voip packets that reached the internet host before its EF rule was in place
        res["voip_before_ef"] = arrived.get(VOIP_PORTS[1], 0) - counter.marked.get(
            VOIP_PORTS[1], 0)
        res["arrived"] = {"voip": arrived.get(VOIP_PORTS[1], 0),
                          "p2p_during": arrived.get(P2P_PORTS[1], 0),
                          "flood": arrived.get(FLOOD_DPORT, 0)}
        res["log_tail"] = ryu.log_tail(200)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=3000, help="new sessions/s offered")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--packet-in-rate", type=int, default=300)
    p.add_argument("--on-overload", choices=("forward", "drop"), default="forward")
    p.add_argument("--json", help="also write the runs here")
    a = p.parse_args(argv)
    from topologies.mininet_net import mininet_lock
    from topologies.ovs_service import OvsService
    from ryu_apps.gateway.demo_bundle import cached

    model = str(cached())
    rows = []
    with OvsService() as ovs, mininet_lock():
        ovs.activate()
        for i, quota in enumerate((True, False)):
            r = run_fairness(ovs, f"egwq{i + 1}", quota=quota, rate=a.rate, seconds=a.seconds,
                             packet_in_rate=a.packet_in_rate, on_overload=a.on_overload,
                             model=model)
            for k in ("log_tail", "meter_stats"):
                r.pop(k)
            rows.append(r)
            print(json.dumps(r, indent=1))
    if a.json:
        doc = {"command": "benchmarks/bench_fairness.py " + " ".join(argv or sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d"), "model": "demo bundle", "runs": rows}
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    print()
    print("| quota | flood sent (rate) | packet-ins at the app: mirror / overload | meter "
          "dropped | flood at WAN | voip: class, reason | voip packets before its EF rule "
          "| p2p packets at WAN during the flood |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        v = r["voip"] or {}
        print(f"| {'on' if r['quota'] else 'off'} | {r['sent']} ({r['achieved_rate']}/s) | "
              f"{r['packet_ins']['mirror']} / {r['packet_ins']['overload']} | "
              f"{r['controller_meter_dropped']} | {r['arrived']['flood']} | "
              f"{v.get('class')}, {v.get('reason')} | {r['voip_before_ef']} | "
              f"{r['arrived']['p2p_during']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
