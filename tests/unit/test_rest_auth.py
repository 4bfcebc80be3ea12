"""The REST API's access rules (issue 16, item 6): every endpoint but /egw/health needs
the token (401 without or with a wrong one, 403 when the gateway has none); /metrics
opens to loopback only by an explicit flag; refused requests are logged at a bounded
rate; the token file must be private; /egw/sessions is paged."""
from __future__ import annotations

import logging
import os

import pytest
from ryu.app.wsgi import WSGIApplication
from webob import Request

from ryu_apps.gateway.auth import (DEFAULT_PAGE, MAX_PAGE, Guard, TokenError, find_token,
                                   read_token_file)
from ryu_apps.gateway.core import Gateway
from ryu_apps.gateway.devices import DeviceTable
from ryu_apps.gateway.metrics import Metrics
from ryu_apps.gateway.rest import APP_KEY, GatewayController
from ryu_apps.gateway.sessions import SessionTable
from ryu_apps.gateway.rules import FiveTuple

TOKEN = "s3cret-token"
ENDPOINTS = [("GET", "/egw/status"), ("GET", "/egw/sessions"), ("GET", "/egw/sessions/1"),
             ("GET", "/egw/stats"), ("GET", "/egw/policy"), ("POST", "/egw/policy/reload"),
             ("GET", "/egw/devices"), ("POST", "/egw/devices/02:00:00:00:00:09/approve"),
             ("GET", "/metrics")]


class _Eng:
    def __init__(self, n):
        self.table = SessionTable(100000)
        for i in range(n):
            f = FiveTuple(4, 6, bytes([10, 0, 0, 2]), 1000 + i, bytes([10, 0, 0, 1]), 443)
            self.table.create(f.key(), flow=f, client_mac="02:00:00:00:00:02",
                              server_mac="02:00:00:00:00:01", client_port=1, first_ts=0.0,
                              last_ts=0.0)

    def stats(self):
        return {"sessions_active": len(self.table)}


class _Gw:
    """What the REST layer calls on the Gateway (its page and lookup are the real ones)."""
    sessions_page = Gateway.sessions_page
    session = Gateway.session
    all_stats = Gateway.all_stats
    devices_view = Gateway.devices_view

    def __init__(self, n=0, dpids=(1,)):
        self.engines = {d: _Eng(n) for d in dpids}
        self.devices = DeviceTable()
        self.device_model = None        # no egw_device_model

    def policy_view(self):
        return {"path": "/etc/egw/policy.yaml", "last_error": None, "policy": {}}


class _App:
    def __init__(self, token=TOKEN, metrics_open=False, n=3, dpids=(1,)):
        self.guard = Guard(token, metrics_open=metrics_open)
        self.gw = _Gw(n, dpids)
        self.metrics = Metrics()
        self.reloads = 0

    def health(self):
        return {"ok": True, "switches": 1, "model": True, "policy_ok": True}

    def status(self):
        return {"ok": True, "policy": "/etc/egw/policy.yaml"}

    def reload_policy(self, trigger):
        self.reloads += 1
        return True, "ok"

    def approve_device(self, mac):
        return self.gw.devices.approve(mac)[0]


def _wsgi(app):
    w = WSGIApplication()
    w.register(GatewayController, {APP_KEY: app})
    return w


def _call(w, method, path, token=None, remote="127.0.0.1", header="Authorization"):
    req = Request.blank(path, method=method, remote_addr=remote)
    if token is not None:
        req.headers[header] = f"Bearer {token}" if header == "Authorization" else token
    return req.get_response(w)


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_every_endpoint_but_health_needs_the_token(method, path):
    app = _App()
    w = _wsgi(app)
    assert _call(w, method, path).status_int == 401
    assert _call(w, method, path, "wrong").status_int == 401
    assert _call(w, method, path, TOKEN).status_int in (200, 404)
    assert _call(w, method, path, TOKEN, header="X-EGW-Token").status_int in (200, 404)
    assert app.reloads == (2 if path == "/egw/policy/reload" else 0)
    # no token configured: locked (403), whatever the request carries
    w = _wsgi(_App(token=""))
    assert _call(w, method, path).status_int == 403
    assert _call(w, method, path, "anything").status_int == 403


def test_health_is_open_and_minimal():
    for token in (TOKEN, ""):
        r = _call(_wsgi(_App(token=token)), "GET", "/egw/health")
        assert r.status_int == 200
        assert "/" not in r.text and "error" not in r.text      # no paths, no error texts


def test_metrics_open_flag_is_loopback_only():
    w = _wsgi(_App(metrics_open=True))
    assert _call(w, "GET", "/metrics").status_int == 200
    assert _call(w, "GET", "/metrics", remote="::1").status_int == 200
    assert _call(w, "GET", "/metrics", remote="192.168.1.20").status_int == 401
    assert _call(w, "GET", "/egw/stats").status_int == 401         # only /metrics opens


def test_refused_requests_logged_at_a_bounded_rate(caplog):
    t = [0.0]
    slept = []
    g = Guard(TOKEN, log_lines=3, interval=60.0, delay=0.1, clock=lambda: t[0],
              sleep=slept.append)
    with caplog.at_level(logging.WARNING, logger="egw.auth"):
        for _ in range(50):
            assert g.check("/egw/sessions", {"Authorization": "Bearer nope"}, "10.0.0.9") == 401
        assert len(caplog.records) == 3 and "10.0.0.9" in caplog.text
        assert "nope" not in caplog.text and TOKEN not in caplog.text
        t[0] = 61.0
        g.check("/egw/stats", {}, "10.0.0.9")
    assert "47 more refused" in caplog.text and len(caplog.records) == 5
    assert g.failures == 51 and slept == [0.1] * 51
    assert g.check("/egw/stats", {"Authorization": f"Bearer {TOKEN}"}, "10.0.0.9") == 200
    assert g.failures == 51


def test_token_file_must_be_private(tmp_path, caplog):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    for mode in (0o640, 0o604, 0o620, 0o644):
        os.chmod(f, mode)
        with pytest.raises(TokenError, match="chmod 600"):
            read_token_file(f)
        with caplog.at_level(logging.ERROR):
            assert find_token(str(f), "arg", environ={"EGW_API_TOKEN": "env"}) == ("", "bad-file")
        assert TOKEN not in caplog.text
    os.chmod(f, 0o600)
    assert read_token_file(f) == TOKEN
    assert find_token(str(f), "arg", environ={"EGW_API_TOKEN": "env"}) == (TOKEN, "file")
    assert find_token("", "arg", environ={"EGW_API_TOKEN": "env"}) == ("env", "env")
    with caplog.at_level(logging.WARNING):
        assert find_token("", "arg", environ={}) == ("arg", "argument")
    assert "cmdline" in caplog.text
    assert find_token("", "", environ={}) == ("", "none")
    (tmp_path / "empty").write_text("\n")
    os.chmod(tmp_path / "empty", 0o600)
    with pytest.raises(TokenError, match="empty"):
        read_token_file(tmp_path / "empty")
    with pytest.raises(TokenError, match="cannot read"):
        read_token_file(tmp_path / "missing")


def test_sessions_are_paged():
    import json
    w = _wsgi(_App(n=250, dpids=(1, 2)))
    doc = json.loads(_call(w, "GET", "/egw/sessions", TOKEN).text)
    assert len(doc["sessions"]) == DEFAULT_PAGE and doc["total"] == 500
    seen, after = [], None
    while True:
        q = "/egw/sessions?limit=70" + (f"&after={after}" if after else "")
        doc = json.loads(_call(w, "GET", q, TOKEN).text)
        assert len(doc["sessions"]) <= 70
        seen += [(s["id"], s["dpid"]) for s in doc["sessions"]]
        after = doc["next"]
        if not after:
            break
    assert len(seen) == len(set(seen)) == 500 and seen == sorted(seen)
    # a plain session id works as a cursor too; limit is capped
    doc = json.loads(_call(w, "GET", "/egw/sessions?after=240", TOKEN).text)
    assert [s["id"] for s in doc["sessions"]] == [i for i in range(241, 251) for _ in (1, 2)]
    big = _App(n=MAX_PAGE + 5)
    doc = json.loads(_call(_wsgi(big), "GET", "/egw/sessions?limit=99999", TOKEN).text)
    assert len(doc["sessions"]) == MAX_PAGE and doc["next"]
    for bad in ("limit=0", "limit=x", "after=zz"):
        assert _call(w, "GET", f"/egw/sessions?{bad}", TOKEN).status_int == 400
    assert json.loads(_call(w, "GET", "/egw/sessions/7", TOKEN).text)["id"] == 7
    assert _call(w, "GET", "/egw/sessions/9999", TOKEN).status_int == 404


def test_api_binds_loopback_by_default():
    import ryu_apps.egw  # noqa: F401  (sets the default)
    from ryu import cfg
    assert cfg.CONF.wsapi_host == "127.0.0.1"
