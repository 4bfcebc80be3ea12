"""The gateway's REST API on Ryu's WSGI server (imports Ryu: the one module of
ryu_apps.gateway that does; egw.py, egw_flags.py and ofmsg.py are the others).

Every endpoint but ``/egw/health`` needs the token (``X-EGW-Token: T`` or
``Authorization: Bearer T``; see :mod:`ryu_apps.gateway.auth`): 401 without it or with a
wrong one, 403 when the gateway has no token. ``/metrics`` may be opened to loopback
clients (``egw_metrics_open``).

    GET  /egw/health              {"ok": true, "switches": N, "model": bool, "policy_ok": bool}
    GET  /egw/status              switches, model and policy paths, errors, labels
    GET  /egw/sessions            a page of sessions (?limit=&after=): {"sessions", "next", "total"}
    GET  /egw/sessions/{id}       one session
    GET  /egw/stats               per-class statistics, meters, counters
    GET  /egw/policy              the running policy (JSON) and where it came from
    POST /egw/policy/reload       re-read the policy file
    GET  /egw/devices             LAN devices: type, kind, confidence, packets needed, quarantine
    POST /egw/devices/{mac}/approve   lift a device's quarantine (kept across restarts)
    GET  /metrics                 Prometheus text format
"""
from __future__ import annotations

import json

from ryu.app.wsgi import ControllerBase, route
from webob import Response

from .auth import page_params

APP_KEY = "egw_app"


def set_socket_timeout(seconds: float, logger) -> bool:
    """Close REST client connections silent for ``seconds`` (0: never). Needs Ryu built with
    patches/ryu-4.34-wsgi-socket-timeout.patch (``hub.WSGI_SOCKET_TIMEOUT``, read when the
    WSGI server starts, i.e. after the apps' constructors); returns False, logged, without."""
    from ryu.lib import hub

    if not hasattr(hub, "WSGI_SOCKET_TIMEOUT"):
        logger.warning("REST socket timeout not set: this Ryu lacks "
                       "patches/ryu-4.34-wsgi-socket-timeout.patch (run scripts/bootstrap.sh)")
        return False
    hub.WSGI_SOCKET_TIMEOUT = seconds if seconds > 0 else None
    return True


def _json(obj, status=200) -> Response:
    return Response(status=status, content_type="application/json", charset="utf-8",
                    body=json.dumps(obj, indent=1, default=str).encode())


def guarded(handler):
    """Run ``handler`` only when the app's :class:`auth.Guard` lets the request through."""
    def wrapper(self, req, **kw):
        status = self.app.guard.check(req.path, req.headers, req.remote_addr)
        if status == 401:
            return _json({"error": "bad or missing token"}, 401)
        if status == 403:
            return _json({"error": "the REST API has no token configured"}, 403)
        return handler(self, req, **kw)
    wrapper.__name__ = handler.__name__
    return wrapper


class GatewayController(ControllerBase):
    def __init__(self, req, link, data, **config):
        super().__init__(req, link, data, **config)
        self.app = data[APP_KEY]

    @route("egw", "/egw/health", methods=["GET"])
    def health(self, req, **_):
        return _json(self.app.health())

    @route("egw", "/egw/status", methods=["GET"])
    @guarded
    def status(self, req, **_):
        return _json(self.app.status())

    @route("egw", "/egw/sessions", methods=["GET"])
    @guarded
    def sessions(self, req, **_):
        try:
            limit, after = page_params(req.GET)
        except ValueError:
            return _json({"error": "limit: a positive integer; after: a session id or "
                                   "the 'next' of the previous page"}, 400)
        return _json(self.app.gw.sessions_page(limit, after))

    @route("egw", "/egw/sessions/{sid}", methods=["GET"], requirements={"sid": r"\d+"})
    @guarded
    def session(self, req, sid, **_):
        s = self.app.gw.session(int(sid))
        return _json(s) if s is not None else _json({"error": f"no session {sid}"}, 404)

    @route("egw", "/egw/stats", methods=["GET"])
    @guarded
    def stats(self, req, **_):
        return _json(self.app.gw.all_stats())

    @route("egw", "/egw/policy", methods=["GET"])
    @guarded
    def policy(self, req, **_):
        return _json(self.app.gw.policy_view())

    @route("egw", "/egw/policy/reload", methods=["POST"])
    @guarded
    def reload(self, req, **_):
        ok, message = self.app.reload_policy("rest")
        return _json({"ok": ok, "message": message}, 200 if ok else 400)

    @route("egw", "/egw/devices", methods=["GET"])
    @guarded
    def devices(self, req, **_):
        return _json(self.app.gw.devices_view())

    @route("egw", "/egw/devices/{mac}/approve", methods=["POST"],
           requirements={"mac": r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}"})
    @guarded
    def approve_device(self, req, mac, **_):
        view = self.app.approve_device(mac.replace("-", ":").lower())
        return _json(view) if view is not None else _json({"error": f"no device {mac}"}, 404)

    @route("egw", "/metrics", methods=["GET"])
    @guarded
    def metrics(self, req, **_):
        return Response(status=200, content_type="text/plain", charset="utf-8",
                        body=self.app.metrics.render())
