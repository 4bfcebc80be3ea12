"""A real Prometheus (Debian's ``/usr/bin/prometheus``) on loopback, for the fleet emulation.

The shipped configuration (``deploy/prometheus/prometheus.yml`` and its alert rules) is
used with only what a run must change rewritten: the targets (a file_sd JSON), the token
file, the intervals and the paths. Storage is a temporary directory; the process is
started in its own session and stopped by its PID. Queries go through the HTTP API
(``/api/v1/query``, ``/api/v1/query_range``).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from topologies.controller import free_port, stop_group

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


class PrometheusError(RuntimeError):
    user_facing = True


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)


def fleet_config(targets: list[tuple[str, dict]], token_file: str | os.PathLike, workdir: Path,
                 interval: str = "1s", deploy: Path = DEPLOY) -> Path:
    """``deploy/prometheus/prometheus.yml`` for these targets (``host:port``, labels),
    scraped with the bearer token in ``token_file`` every ``interval``; returns its path."""
    cfg = yaml.safe_load((deploy / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval=interval, evaluation_interval=interval)
    cfg["rule_files"] = [str(deploy / f) for f in cfg.get("rule_files", [])]
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "egw"]
    job["authorization"]["credentials_file"] = str(token_file)
    sd = workdir / "targets.json"
    sd.write_text(json.dumps([{"targets": [t], "labels": labels} for t, labels in targets]))
    job["file_sd_configs"] = [{"files": [str(sd)], "refresh_interval": "1s"}]
    out = workdir / "prometheus.yml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


class PrometheusProcess:
    """``prometheus --config.file C --storage.tsdb.path D --web.listen-address 127.0.0.1:P``."""

    def __init__(self, config: Path, workdir: Path, port: int | None = None):
        self.config, self.workdir = Path(config), Path(workdir)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "PrometheusProcess":
        binary = prometheus_binary()
        if binary is None:
            raise PrometheusError("prometheus not found: apt-get install prometheus "
                                  "(scripts/bootstrap.sh installs it)")
        storage = self.workdir / "tsdb"
        storage.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.config}", f"--storage.tsdb.path={storage}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.proc.returncode}: "
                                      + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus not ready on {self.port} within {timeout}s: "
                              + self.log_tail())

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _get(self, path: str, **params):
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read())
        if doc.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant vector: ``[{"metric": {...}, "value": [ts, "v"]}, ...]``."""
        return self._get("/api/v1/query", query=expr,
                         **({"time": f"{at:.3f}"} if at is not None else {}))["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self._get("/api/v1/query_range", query=expr, start=f"{start:.3f}",
                         end=f"{end:.3f}", step=f"{step}")["result"]

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets")["activeTargets"]

    def rules(self) -> list[dict]:
        return self._get("/api/v1/rules")["groups"]

    def wait_up(self, n: int, timeout: float = 30.0) -> list[dict]:
        """Until ``n`` targets have been scraped successfully."""
        deadline = time.monotonic() + timeout
        while True:
            ts = self.targets()
            if sum(t["health"] == "up" for t in ts) >= n:
                return ts
            if time.monotonic() > deadline:
                raise PrometheusError(f"{n} targets not up within {timeout}s: "
                                      + json.dumps([(t["scrapeUrl"], t["health"], t["lastError"])
                                                    for t in ts]))
            time.sleep(0.3)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_group(self.proc, (signal.SIGTERM, signal.SIGKILL), timeout)
        self._log.close()

    def __enter__(self) -> "PrometheusProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
