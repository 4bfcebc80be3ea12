"""Run the gateway as a real ``ryu-manager ryu_apps/egw.py`` subprocess.

Started in its own process group and stopped by that PID only. Its REST API
listens on loopback. Logs go to a file so a failing test or demo can show them.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ryu_apps.cli import EGW_APP, with_user_flags  # paths and argv only: no Ryu import

log = logging.getLogger(__name__)


class ControllerError(RuntimeError):
    user_facing = True


def stop_group(proc: subprocess.Popen, signals, timeout: float) -> None:
    """Stop the process group ``proc`` leads (started with ``start_new_session``: only what
    this code started): each of ``signals`` in turn, waiting an equal share of ``timeout``
    for it to exit before the next."""
    for sig in signals:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout / len(signals))
            break
        except subprocess.TimeoutExpired:
            continue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ryu_manager() -> str:
    here = Path(sys.executable).parent / "ryu-manager"
    if here.exists():
        return str(here)
    found = shutil.which("ryu-manager")
    if not found:
        raise ControllerError("ryu-manager not found; run scripts/bootstrap.sh")
    return found


class RyuProcess:
    """``ryu-manager <apps> --ofp-tcp-listen-port P --wsapi-host 127.0.0.1 --wsapi-port W``.

    The gateway's REST token (``token``; a random one by default) goes to the process in
    its environment (``EGW_API_TOKEN``), never on its command line; ``metrics_open``
    adds ``--egw-metrics-open`` (``/metrics`` without the token, loopback only)."""

    def __init__(self, apps: list[str] | None = None, extra_args: list[str] | None = None,
                 log_path: str | os.PathLike | None = None, of_port: int | None = None,
                 ws_port: int | None = None, env: dict[str, str] | None = None,
                 wait_for: str = "of", token: str | None = None, metrics_open: bool = True):
        self.apps = apps or [str(EGW_APP)]
        self.extra_args = list(extra_args or [])
        self.token = token or secrets.token_urlsafe(24)
        if metrics_open and str(EGW_APP) in self.apps:
            self.extra_args.append("--egw-metrics-open")
        if any(a.startswith(("--egw-", "--noegw-")) for a in self.extra_args):
            self.extra_args = with_user_flags(self.extra_args)
        self.of_port = of_port or free_port()
        self.ws_port = ws_port or free_port()
        self.log_path = Path(log_path) if log_path else Path(f"/tmp/egw-ryu-{self.of_port}.log")
        self.env = env
        self.wait_for = wait_for  # "of": OpenFlow listener, "ws": REST listener
        self.proc: subprocess.Popen | None = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.ws_port}"

    def start(self, timeout: float = 30.0) -> "RyuProcess":
        cmd = [_ryu_manager(), *self.apps,
               "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(self.of_port),
               "--wsapi-host", "127.0.0.1", "--wsapi-port", str(self.ws_port),
               *self.extra_args]
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "EGW_API_TOKEN": self.token, **(self.env or {}),
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        log.info("ryu-manager pid %d: %s", self.proc.pid, " ".join(cmd))
        port = self.of_port if self.wait_for == "of" else self.ws_port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ControllerError(
                    f"ryu-manager exited with {self.proc.returncode}; log {self.log_path}:\n"
                    + self.log_tail())
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ControllerError(f"ryu-manager did not listen on {port} within {timeout}s:\n"
                              + self.log_tail())

    def client(self, timeout: float = 5.0):
        """A :class:`~topologies.gateway_client.GatewayClient` with this process's token."""
        from topologies.gateway_client import GatewayClient
        return GatewayClient(self.rest_url, token=self.token, timeout=timeout)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_group(self.proc, (signal.SIGINT, signal.SIGTERM, signal.SIGKILL), timeout)
        self._log.close()

    def __enter__(self) -> "RyuProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
