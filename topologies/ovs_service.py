"""Open vSwitch without systemd: a private ovsdb-server + ovs-vswitchd.

The service runs from its own run directory (database, sockets, pidfiles,
logs), so it never touches an Open vSwitch it did not start, and it is stopped
by the PIDs in its own pidfiles. Bridges must use ``datapath_type=netdev``:
this machine has no Open vSwitch kernel module.

Mininet and ``ovs-vsctl`` find the database through the ``OVS_RUNDIR`` /
``OVS_DBDIR`` environment variables, which :meth:`OvsService.env` returns and
:meth:`OvsService.activate` sets for the current process.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA_CANDIDATES = (
    "/usr/share/openvswitch/vswitch.ovsschema",
    "/usr/local/share/openvswitch/vswitch.ovsschema",
)


class OvsError(RuntimeError):
    user_facing = True


def _schema() -> str:
    for path in SCHEMA_CANDIDATES:
        if os.path.exists(path):
            return path
    raise OvsError(
        "Open vSwitch schema not found (vswitch.ovsschema); install the Debian package "
        "openvswitch-switch (scripts/bootstrap.sh does)"
    )


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class OvsService:
    """A private Open vSwitch instance: ``start()``, use, ``stop()``.

    Also a context manager. ``rundir`` defaults to a fresh temporary directory
    that is removed on stop.
    """

    def __init__(self, rundir: str | os.PathLike | None = None, keep_rundir: bool = False):
        self._own_tmp = rundir is None
        self.rundir = Path(rundir or tempfile.mkdtemp(prefix="egw-ovs-"))
        self.keep_rundir = keep_rundir
        self.db = self.rundir / "conf.db"
        self.db_sock = self.rundir / "db.sock"
        self._pids: dict[str, int] = {}
        self._saved_env: dict[str, str | None] = {}

    # -- environment -----------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment variables that point OVS tools at this instance."""
        return {
            "OVS_RUNDIR": str(self.rundir),
            "OVS_DBDIR": str(self.rundir),
            "OVS_LOGDIR": str(self.rundir),
            "OVS_SYSCONFDIR": str(self.rundir),
        }

    def activate(self) -> None:
        """Point this process's OVS tools (and Mininet) at this instance."""
        for key, value in self.env().items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def deactivate(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def vsctl(self, *args: str, check: bool = True) -> str:
        cmd = ["ovs-vsctl", f"--db=unix:{self.db_sock}", "--timeout=10", *args]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if check and res.returncode != 0:
            raise OvsError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
        return res.stdout

    def ofctl(self, bridge: str, *args: str, check: bool = True) -> str:
        """``ovs-ofctl -O OpenFlow13`` against a bridge of this instance."""
        mgmt = self.rundir / f"{bridge}.mgmt"
        cmd = ["ovs-ofctl", "-O", "OpenFlow13", *args[:1], f"unix:{mgmt}", *args[1:]]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if check and res.returncode != 0:
            raise OvsError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
        return res.stdout

    def appctl(self, *args: str, target: str = "ovs-vswitchd", timeout: float = 10.0) -> str:
        """``ovs-appctl -t <this instance's control socket> ...``; "" when it fails."""
        cmd = ["ovs-appctl", "-t", str(self.rundir / f"{target}.ctl"), *args]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return ""
        return res.stdout if res.returncode == 0 else ""

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "OvsService":
        for tool in ("ovsdb-server", "ovs-vswitchd", "ovsdb-tool", "ovs-vsctl"):
            if shutil.which(tool) is None:
                raise OvsError(f"{tool} not found on PATH; install openvswitch-switch")
        self.rundir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env()}
        if not self.db.exists():
            subprocess.run(["ovsdb-tool", "create", str(self.db), _schema()], check=True, env=env)
        self._daemon("ovsdb-server", str(self.db), f"--remote=punix:{self.db_sock}")
        self._pids["ovsdb-server"] = self._wait_pid("ovsdb-server", timeout)
        self._wait(lambda: self.db_sock.exists(), timeout, "ovsdb-server socket")
        self.vsctl("--no-wait", "init")
        self._daemon("ovs-vswitchd", f"unix:{self.db_sock}")
        self._pids["ovs-vswitchd"] = self._wait_pid("ovs-vswitchd", timeout)
        # Ready when vswitchd answers on its control socket.
        ctl = str(self.rundir / "ovs-vswitchd.ctl")
        self._wait(lambda: subprocess.run(["ovs-appctl", "-t", ctl, "version"],
                                          capture_output=True).returncode == 0,
                   timeout, "ovs-vswitchd control socket")
        log.info("Open vSwitch started in %s (pids %s)", self.rundir, self._pids)
        return self

    def _daemon(self, name: str, *args: str) -> None:
        """Start an OVS daemon detached, with its pidfile, log and control socket here."""
        subprocess.run(
            [name, *args,
             f"--pidfile={self.rundir / (name + '.pid')}",
             f"--log-file={self.rundir / (name + '.log')}",
             f"--unixctl={self.rundir / (name + '.ctl')}",
             "--detach", "--no-chdir"],
            check=True, env={**os.environ, **self.env()}, capture_output=True,
        )

    def _wait_pid(self, name: str, timeout: float) -> int:
        pidfile = self.rundir / f"{name}.pid"
        pid = self._wait(lambda: _read_pid(pidfile), timeout, f"{name} pidfile")
        return int(pid)

    @staticmethod
    def _wait(predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise OvsError(f"timed out after {timeout:.0f}s waiting for {what}")

    @property
    def pids(self) -> dict[str, int]:
        return dict(self._pids)

    def running(self) -> bool:
        return bool(self._pids) and all(_alive(p) for p in self._pids.values())

    def add_bridge(self, name: str, controller: str | None = None,
                   fail_mode: str = "secure", dpid: str | None = None) -> None:
        """A userspace (netdev) bridge speaking OpenFlow 1.3."""
        args = ["--may-exist", "add-br", name, "--", "set", "bridge", name,
                "datapath_type=netdev", "protocols=OpenFlow13", f"fail_mode={fail_mode}"]
        if dpid:
            args.append(f"other_config:datapath-id={dpid}")
        self.vsctl(*args)
        if controller:
            self.vsctl("set-controller", name, controller)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemons this instance started (by PID), then remove its run dir."""
        for name in ("ovs-vswitchd", "ovsdb-server"):
            pid = self._pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.deactivate()
        if self._own_tmp and not self.keep_rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)
        log.info("Open vSwitch in %s stopped", self.rundir)

    def __enter__(self) -> "OvsService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
