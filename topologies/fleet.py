"""A fleet of homes: :class:`~topologies.smart_home.MultiHomeTopo` with one controller per
home (its own ``ryu-manager``, OpenFlow port and REST port), all scraped by one real
Prometheus (:mod:`topologies.prometheus`) with the fleet's scrape token.

Every process is started here and stopped by its PID; the network by ``net.stop()``.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from topologies.controller import RyuProcess
from topologies.mininet_net import build_net, wait_connected
from topologies.prometheus import PrometheusProcess, fleet_config
from topologies.smart_home import DEVICES, MultiHomeTopo


def home_label(i: int) -> str:
    return f"home{i}"


class Fleet:
    """``homes`` gateways ``egw1..egwN``, controller ``i`` for home ``i``.

    The gateways share one API token (``token_file``, mode 0600): Prometheus sends it as
    a bearer token (``/metrics`` is not opened to loopback: ``metrics_open=False``).
    ``extra_args``: per home, more ``ryu-manager`` flags (e.g. a lower packet-in rate)."""

    def __init__(self, workdir: str | os.PathLike, homes: int = 2, devices=DEVICES[:2],
                 extra_args: dict[int, list[str]] | None = None, scrape_interval: str = "1s"):
        self.workdir = Path(workdir)
        self.homes, self.devices = homes, devices
        self.extra_args = extra_args or {}
        self.scrape_interval = scrape_interval
        self.token = secrets.token_urlsafe(24)
        self.ryus: dict[int, RyuProcess] = {}
        self.net = None
        self.prom: PrometheusProcess | None = None

    def start(self) -> "Fleet":
        self.workdir.mkdir(parents=True, exist_ok=True)
        token_file = self.workdir / "api-token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        try:
            for i in range(1, self.homes + 1):
                self.ryus[i] = RyuProcess(log_path=self.workdir / f"ryu-{home_label(i)}.log",
                                          token=self.token, metrics_open=False,
                                          extra_args=self.extra_args.get(i, [])).start()
            self.net = build_net(MultiHomeTopo(homes=self.homes, devices=self.devices),
                                 {f"egw{i}": r.of_port for i, r in self.ryus.items()})
            self.net.start()
            if not wait_connected(self.net, 30):
                raise RuntimeError("switches did not connect:\n"
                                   + "\n".join(r.log_tail(10) for r in self.ryus.values()))
            for r in self.ryus.values():
                r.client().wait_ready()
            targets = [(f"127.0.0.1:{r.ws_port}", {"home": home_label(i)})
                       for i, r in self.ryus.items()]
            config = fleet_config(targets, token_file, self.workdir, self.scrape_interval)
            self.prom = PrometheusProcess(config, self.workdir).start()
            self.prom.wait_up(self.homes)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, i: int):
        return self.ryus[i].client()

    def host(self, i: int, name: str):
        return self.net.get(f"h{i}{name}")

    def replay(self, i: int, sessions: dict[str, list], device: str | None = None,
               gap: float = 0.01, first_port: int = 30000) -> list:
        """Replay captured sessions (``{label: [CapturedSession]}``) between a device of
        home ``i`` and its internet host, through that home's gateway; the client ports
        count from ``first_port`` (a new range makes new sessions)."""
        from topologies.replay import Replayer, rewrite

        dev = self.host(i, device or self.devices[0].name)
        inet = self.host(i, "inet")
        flat = [cs for label in sorted(sessions) for cs in sessions[label]]
        rs = [rewrite(cs, k, dev.name, dev.IP(), dev.MAC(), inet.IP(), inet.MAC(), first_port + k)
              for k, cs in enumerate(flat)]
        rp = Replayer({n.name: (n.pid, n.defaultIntf().name) for n in (dev, inet)},
                      server_host=inet.name)
        try:
            rp.replay(rs, gap=gap)
        finally:
            rp.close()
        return rs

    def stop(self) -> None:
        if self.prom is not None:
            self.prom.stop()
        if self.net is not None:
            self.net.stop()
            self.net = None
        for r in self.ryus.values():
            r.stop()

    def __enter__(self) -> "Fleet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
