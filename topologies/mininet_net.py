"""Mininet on this machine: userspace OVS switches, checksum-offload-free links.

There is no Open vSwitch kernel module, so every switch uses
``datapath='user'`` (``datapath_type=netdev``), and TCP through it needs TX
checksum offload off on the veths (``TCULink``). Only ``net.stop()`` is used
for teardown: it removes this network's own links and switches. Mininet's
global cleanup kills processes machine-wide by name and is never
called.
"""
from __future__ import annotations

import fcntl
import logging
import os
import subprocess
from contextlib import contextmanager
from functools import partial

log = logging.getLogger(__name__)

LOCK_PATH = "/tmp/egw-mininet.lock"


@contextmanager
def mininet_lock(path: str = LOCK_PATH):
    """Serialise Mininet runs on this machine (interface names are global)."""
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_net(topo, controller_port: int | dict[str, int] | None, *, fail_mode: str = "secure",
              autoSetMacs: bool = True):
    """A ``Mininet`` for ``topo`` on userspace OVS, controlled by a remote controller on
    127.0.0.1:``controller_port`` (or standalone switches when it is None). A dict
    ``{switch name: port}`` gives each switch its own controller (one per home)."""
    from mininet.link import TCULink
    from mininet.net import Mininet
    from mininet.node import OVSSwitch, RemoteController

    per_switch = isinstance(controller_port, dict)

    class Controller(RemoteController):
        """Mininet's remote controller, with its listening check made by a plain TCP
        connect: Mininet's own runs telnet and decodes what it read as UTF-8, and when the
        controller's OpenFlow HELLO arrives before telnet quits, its random xid bytes raise
        UnicodeDecodeError out of Mininet (more often on a loaded machine)."""

        def checkListening(self):
            import socket

            try:
                socket.create_connection((self.ip, self.port), timeout=5).close()
            except OSError:
                from mininet.log import warn

                warn(f"Unable to contact the remote controller at {self.ip}:{self.port}\n")

    class OwnControllerSwitch(OVSSwitch):
        """Connects to its own controller (``c_<switch name>``) when it has one."""

        def start(self, controllers):
            own = [c for c in controllers if c.name == f"c_{self.name}"]
            return super().start(own or controllers)

    switch = partial(OwnControllerSwitch, datapath="user", protocols="OpenFlow13",
                     failMode=fail_mode if controller_port else "standalone")
    controller = (partial(Controller, ip="127.0.0.1", port=controller_port)
                  if controller_port and not per_switch else None)
    net = Mininet(topo=topo, switch=switch, controller=controller, link=TCULink,
                  autoSetMacs=autoSetMacs, build=False, waitConnected=False)
    if controller is None:
        net.controllers = []
    if per_switch:
        for name, port in controller_port.items():
            net.addController(f"c_{name}", controller=Controller, ip="127.0.0.1",
                              port=port)
    net.build()
    return net


def wait_connected(net, timeout: float = 20.0) -> bool:
    """Wait until every switch reports a controller connection."""
    return net.waitConnected(timeout=timeout)


class HostProcess:
    """A process started in a Mininet host's namespace, stopped by PID."""

    def __init__(self, host, cmd: list[str], stdout=subprocess.PIPE):
        self.host = host
        self.cmd = cmd
        self.proc = host.popen(cmd, stdout=stdout, stderr=subprocess.STDOUT)

    def wait(self, timeout: float | None = None) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, (out or b"").decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def host_pid(host) -> int:
    return host.pid


def is_root() -> bool:
    return os.geteuid() == 0
