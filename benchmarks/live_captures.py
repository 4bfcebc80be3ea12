"""Capture traffic a home makes with real tools, in two network namespaces of our own.

Unfamiliar traffic for the open-set figures (benchmarks/open_set.py): two namespaces
joined by a veth pair (offloads off, so captured packets have their wire sizes), a
tcpdump of the first 400 packets of each run (the classifier reads a session's first few)
on the server side, and per run one of

- ``iperf3_tcp``: an iperf3 TCP bulk upload (1 s at 20 Mbit/s), its control and data sessions;
- ``iperf3_udp``: an iperf3 UDP stream at 2 Mbit/s, 1200-byte datagrams (like the demo's camera);
- ``https_download``: ``openssl s_server -WWW`` serving 1 MB, fetched by ``curl`` over TLS;
- ``http_bulk``: Python's ``http.server`` serving 1 MB, fetched by ``curl``;
- ``tls_shell``: an interactive-looking session: ``openssl s_client`` sending a line every
  50 ms to an ``openssl s_server`` that echoes its status (remote-access-like traffic;
  no sshd is installed here).

Each run is one capture file, ``OUT/<part>/<kind>/run<i>.pcap``; even runs are the tuning
part, odd runs the test part (capture-disjoint). DNS/NTP are not made (no names are
resolved); the dataset builder's filter would drop them. Captures stay under ``runs/``
(never committed). Needs root, ip, ethtool, tcpdump, iperf3, openssl, curl.

    python benchmarks/live_captures.py --out runs/captures/live --runs 12
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER_IP, CLIENT_IP = "10.77.0.1", "10.77.0.2"
KINDS = ("iperf3_tcp", "iperf3_udp", "https_download", "http_bulk", "tls_shell")


def sh(cmd: str, check: bool = True) -> str:
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    return r.stdout


class Pair:
    """Two namespaces named after our PID (so nobody else's are touched) and a veth pair."""

    def __init__(self):
        tag = str(os.getpid())
        self.s, self.c = f"egwood{tag}s", f"egwood{tag}c"
        self.vs, self.vc = f"eo{tag}s"[:15], f"eo{tag}c"[:15]

    def __enter__(self):
        for ns in (self.s, self.c):
            sh(f"ip netns add {ns}")
        sh(f"ip link add {self.vs} type veth peer name {self.vc}")
        for ns, dev, ip in ((self.s, self.vs, SERVER_IP), (self.c, self.vc, CLIENT_IP)):
            sh(f"ip link set {dev} netns {ns}")
            sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
            sh(f"ip netns exec {ns} ip addr add {ip}/24 dev {dev}")
            sh(f"ip netns exec {ns} ip link set {dev} up")
            sh(f"ip netns exec {ns} ip link set lo up")
            sh(f"ip netns exec {ns} ethtool -K {dev} tso off gso off gro off", check=False)
        return self

    def __exit__(self, *exc):
        for ns in (self.s, self.c):
            sh(f"ip netns del {ns}", check=False)   # removes the veth pair with it

    def popen(self, ns: str, cmd: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, **kw)

    def run(self, ns: str, cmd: list[str], timeout: float = 30, **kw) -> int:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout, **kw).returncode


def stop(p: subprocess.Popen) -> None:
    """Stop a process we started, by its PID."""
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_port(pair: Pair, port: int, udp: bool = False, timeout: float = 5) -> None:
    t = time.monotonic() + timeout
    while not sh(f"ip netns exec {pair.s} ss -H{'u' if udp else 't'}ln sport = :{port}",
                 check=False).strip():
        if time.monotonic() > t:
            raise RuntimeError(f"nothing listens on port {port} in {pair.s}")
        time.sleep(0.05)


def one_run(pair: Pair, kind: str, work: Path) -> None:
    srv: list[subprocess.Popen] = []
    try:
        if kind.startswith("iperf3"):
            srv.append(pair.popen(pair.s, ["iperf3", "-s", "-1", "-p", "5201"]))
            wait_port(pair, 5201)
            extra = ["-u", "-b", "2M", "-l", "1200"] if kind == "iperf3_udp" else ["-b", "20M"]
            pair.run(pair.c, ["iperf3", "-c", SERVER_IP, "-p", "5201", "-t", "1", *extra])
        elif kind == "https_download":
            srv.append(pair.popen(pair.s, ["openssl", "s_server", "-accept", "4433", "-cert",
                                           str(work / "cert.pem"), "-key", str(work / "key.pem"),
                                           "-WWW", "-quiet"], cwd=work))
            wait_port(pair, 4433)
            pair.run(pair.c, ["curl", "-ksS", "-o", "/dev/null", f"https://{SERVER_IP}:4433/blob"])
        elif kind == "http_bulk":
            srv.append(pair.popen(pair.s, [sys.executable, "-m", "http.server", "8000", "--bind",
                                           SERVER_IP], cwd=work))
            wait_port(pair, 8000)
            pair.run(pair.c, ["curl", "-sS", "-o", "/dev/null", f"http://{SERVER_IP}:8000/blob"])
        elif kind == "tls_shell":
            srv.append(pair.popen(pair.s, ["openssl", "s_server", "-accept", "4434", "-cert",
                                           str(work / "cert.pem"), "-key", str(work / "key.pem"),
                                           "-quiet"], cwd=work))
            wait_port(pair, 4434)
            lines = "".join(f"ls -la /home/user/{i}\n" for i in range(20))
            script = (f"import sys,time\nfor l in {lines!r}.splitlines(True):\n"
                      "    sys.stdout.write(l); sys.stdout.flush(); time.sleep(0.05)\n")
            feeder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
            pair.run(pair.c, ["openssl", "s_client", "-connect", f"{SERVER_IP}:4434", "-quiet"],
                     stdin=feeder.stdout, timeout=10)
            feeder.wait()
        else:
            raise ValueError(kind)
    finally:
        for p in srv:
            stop(p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/captures/live")
    ap.add_argument("--runs", type=int, default=12, help="runs per kind (half tuning, half test)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    a = ap.parse_args(argv)
    out = Path(a.out)
    with tempfile.TemporaryDirectory(prefix="egw-live-") as tmp, Pair() as pair:
        work = Path(tmp)
        os.chmod(work, 0o755)
        (work / "blob").write_bytes(os.urandom(1 << 20))
        sh(f"openssl req -x509 -newkey rsa:2048 -nodes -keyout {work}/key.pem -out {work}/cert.pem "
           "-days 1 -subj /CN=egw-home")
        for kind in a.kinds.split(","):
            for i in range(a.runs):
                part = "tune" if i % 2 == 0 else "test"
                d = out / part / kind
                d.mkdir(parents=True, exist_ok=True)
                pcap = d / f"run{i}.pcap"
                cap = pair.popen(pair.s, ["tcpdump", "-i", pair.vs, "-U", "-s", "0", "-c", "400", "-w",
                                          str(pcap.resolve()), "ip"])
                time.sleep(0.4)
                try:
                    one_run(pair, kind, work)
                finally:
                    time.sleep(0.3)
                    stop(cap)
                print(f"{kind} run {i} ({part}): {pcap.stat().st_size if pcap.exists() else 0} bytes",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
