"""A small DNS responder and the device side of the quarantine check "a quarantined
device reaches the hosts named in the DNS answers it asked for" (Mininet hosts)::

    python -m topologies.dns_responder serve --bind 10.0.0.200 \\
        --answer cdn.vendor.example=10.0.0.201 --ttl 60 --listen 10.0.0.201:8443
    python -m topologies.dns_responder ask --server 10.0.0.200 --name cdn.vendor.example \\
        --port 8443 --before 10.0.0.201 --after 10.0.0.202

``serve`` answers A questions for its names on UDP port 53 of ``--bind`` (NXDOMAIN for
others) and accepts (then closes) TCP connections on each ``--listen`` address; it runs
until it is terminated. ``ask`` tries TCP connects to the ``--before`` addresses, resolves
``--name`` through ``--server``, then connects to the answer's addresses and to the
``--after`` ones; it prints one JSON object: ``before`` and ``after`` ({address:
connected}), ``resolved`` (addresses), ``named`` ({address: connected}).
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time


def serve(bind: str, answers: dict[str, str], ttl: int, listen: list[tuple[str, int]]) -> None:
    import dns.message
    import dns.rcode
    import dns.rrset

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((bind, 53))
    tcps = []
    for addr, port in listen:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(16)
        tcps.append(s)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([udp, *tcps], [], [], 1.0)
        for s in ready:
            if s is not udp:
                conn, _peer = s.accept()
                conn.close()
                continue
            data, peer = udp.recvfrom(4096)
            try:
                q = dns.message.from_wire(data)
            except Exception:
                continue
            r = dns.message.make_response(q)
            name = q.question[0].name.to_text(omit_final_dot=True).lower() if q.question else ""
            if name in answers and q.question[0].rdtype == 1:
                r.answer.append(dns.rrset.from_text(q.question[0].name, ttl, "IN", "A",
                                                    answers[name]))
            else:
                r.set_rcode(dns.rcode.NXDOMAIN)
            udp.sendto(r.to_wire(), peer)


def connects(addr: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


def ask(server: str, name: str, port: int, before: list[str], after: list[str],
        timeout: float) -> dict:
    import dns.message
    import dns.query

    out: dict = {"before": {a: connects(a, port, timeout) for a in before}}
    t0 = time.monotonic()
    reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=timeout)
    out["resolve_seconds"] = round(time.monotonic() - t0, 3)
    out["resolved"] = [r.address for rr in reply.answer for r in rr if rr.rdtype == 1]
    # the first SYN may beat the rule the answer opens (forwarding never waits for the
    # controller); TCP sends it again after a second
    out["named"] = {a: connects(a, port, timeout) for a in out["resolved"]}
    out["after"] = {a: connects(a, port, timeout) for a in after}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m topologies.dns_responder")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bind", required=True)
    s.add_argument("--answer", action="append", default=[], help="NAME=IPV4")
    s.add_argument("--ttl", type=int, default=60)
    s.add_argument("--listen", action="append", default=[], help="IPV4:PORT")
    a = sub.add_parser("ask")
    a.add_argument("--server", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--before", action="append", default=[])
    a.add_argument("--after", action="append", default=[])
    a.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args(argv)
    if args.cmd == "serve":
        answers = dict(x.lower().split("=", 1) for x in args.answer)
        listen = [(x.rsplit(":", 1)[0], int(x.rsplit(":", 1)[1])) for x in args.listen]
        serve(args.bind, answers, args.ttl, listen)
        return 0
    print(json.dumps(ask(args.server, args.name, args.port, args.before, args.after,
                         args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())


class DnsNamedCheck:
    """In a Mininet net: ``server`` (a host on the WAN side) answers ``name`` with
    ``named`` and listens on TCP ``port`` of ``named`` and ``other`` (addresses added to
    it for the check); :meth:`ask` runs ``ask`` in a device host. The responder is
    stopped by its PID when the ``with`` block ends."""

    def __init__(self, server, name: str, named: str, other: str, port: int = 8443,
                 ttl: int = 60):
        self.server, self.name, self.named, self.other = server, name, named, other
        self.port, self.ttl, self.proc = port, ttl, None

    def __enter__(self) -> "DnsNamedCheck":
        from topologies.mininet_net import HostProcess
        from topologies.traffic import wait_listening
        intf = self.server.defaultIntf().name
        for a in (self.named, self.other):
            self.server.cmd(f"ip addr add {a}/32 dev {intf}")
        self.proc = HostProcess(self.server, [
            sys.executable, "-m", "topologies.dns_responder", "serve",
            "--bind", self.server.IP(), "--answer", f"{self.name}={self.named}",
            "--ttl", str(self.ttl), "--listen", f"{self.named}:{self.port}",
            "--listen", f"{self.other}:{self.port}"])
        wait_listening(self.server, 53, udp=True)
        wait_listening(self.server, self.port)
        return self

    def ask(self, device, before: bool = True, timeout: float = 3.0) -> dict:
        from topologies.mininet_net import HostProcess
        cmd = [sys.executable, "-m", "topologies.dns_responder", "ask", "--server",
               self.server.IP(), "--name", self.name, "--port", str(self.port),
               "--after", self.other, "--timeout", str(timeout)]
        if before:
            cmd += ["--before", self.named]
        rc, out = HostProcess(device, cmd).wait(timeout=60)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"error": f"exit {rc}: {out[-500:]}"}

    def reaches(self, device, addr: str, timeout: float = 3.0) -> bool:
        """A TCP connect from ``device`` to ``addr``:port."""
        code = (f"import socket,sys\ntry:\n socket.create_connection(('{addr}', {self.port}), "
                f"timeout={timeout}).close()\nexcept OSError:\n sys.exit(1)")
        from topologies.mininet_net import HostProcess
        rc, _out = HostProcess(device, [sys.executable, "-c", code]).wait(timeout=60)
        return rc == 0

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.stop()
