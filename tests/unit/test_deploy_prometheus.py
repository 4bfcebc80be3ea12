"""deploy/prometheus: promtool accepts the scrape config and the alert rules, the rules'
unit tests pass (each alert fires on its series), and every egw_* metric they and the
Grafana dashboard (deploy/grafana/egw.json) name is one the gateway exports
(ryu_apps/gateway/metrics.py). The fleet integration test runs the dashboard's queries."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from ryu_apps.gateway.metrics import Metrics
from topologies.prometheus import DEPLOY, fleet_config

PROMTOOL = shutil.which("promtool")
GRAFANA = DEPLOY.parents[1] / "deploy" / "grafana" / "egw.json"
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("EGW_REQUIRE_INTEGRATION") != "1",
    reason="promtool not installed (Debian package prometheus)")


def _promtool(*args, cwd=DEPLOY) -> str:
    assert PROMTOOL, "EGW_REQUIRE_INTEGRATION=1 but promtool is not installed"
    r = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


@needs_promtool
def test_promtool_checks_rules_and_runs_their_tests():
    assert "SUCCESS: 8 rules found" in _promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")


@needs_promtool
def test_promtool_checks_the_scrape_config(tmp_path):
    # as shipped, but with the token file and targets of this machine
    token = tmp_path / "api-token"
    token.write_text("t")
    cfg = fleet_config([("127.0.0.1:8080", {"home": "0001"})], token, tmp_path, "15s")
    out = _promtool("check", "config", str(cfg))
    assert "is valid prometheus config file syntax" in out and "8 rules found" in out
    # the shipped file itself differs only in those paths and intervals
    shipped = (DEPLOY / "prometheus.yml").read_text()
    assert "credentials_file: /etc/egw/api-token" in shipped and "targets/*.json" in shipped


def test_alert_rules_and_dashboard_name_only_exported_metrics():
    families = {fam.name for fam in Metrics().registry.collect()}
    names = set()
    for f in (DEPLOY / "alerts.yml", DEPLOY / "alerts_test.yml", GRAFANA):
        names |= set(re.findall(r"\begw_[a-z_]+", f.read_text()))
    assert names, "no egw_ metric in the rules"
    # counters are exported as NAME_total, histograms as NAME_bucket/_sum/_count
    known = {f + suffix for f in families for suffix in ("", "_total", "_bucket", "_sum", "_count")}
    missing = sorted(n for n in names if n not in known)
    assert not missing, missing
    panels = json.loads(GRAFANA.read_text())["panels"]
    assert len(panels) >= 8 and all(t["expr"] for p in panels for t in p["targets"])
