"""The gateway's REST API on Ryu's WSGI server (imports Ryu: the one module of
ryu_apps.gateway that does; egw.py, egw_flags.py and ofmsg.py are the others).

    GET  /egw/health              {"ok": true, "switches": [...], "model": ..., "policy": ...}
    GET  /egw/sessions            every session: class, confidence, action, counters
    GET  /egw/sessions/{id}       one session
    GET  /egw/stats               per-class statistics, meters, counters
    GET  /egw/policy              the running policy (JSON) and where it came from
    POST /egw/policy/reload       re-read the policy file (token needed)
    GET  /metrics                 Prometheus text format
"""
from __future__ import annotations

import hmac
import json

from ryu.app.wsgi import ControllerBase, route
from webob import Response

APP_KEY = "egw_app"


def _json(obj, status=200) -> Response:
    return Response(status=status, content_type="application/json", charset="utf-8",
                    body=json.dumps(obj, indent=1, default=str).encode())


class GatewayController(ControllerBase):
    def __init__(self, req, link, data, **config):
        super().__init__(req, link, data, **config)
        self.app = data[APP_KEY]

    def _authorized(self, req) -> bool:
        token = self.app.api_token
        if not token:
            return False
        given = req.headers.get("X-EGW-Token", "")
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = given or auth[7:]
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    @route("egw", "/egw/health", methods=["GET"])
    def health(self, req, **_):
        return _json(self.app.health())

    @route("egw", "/egw/sessions", methods=["GET"])
    def sessions(self, req, **_):
        return _json(self.app.all_sessions())

    @route("egw", "/egw/sessions/{sid}", methods=["GET"], requirements={"sid": r"\d+"})
    def session(self, req, sid, **_):
        for s in self.app.all_sessions():
            if s["id"] == int(sid):
                return _json(s)
        return _json({"error": f"no session {sid}"}, 404)

    @route("egw", "/egw/stats", methods=["GET"])
    def stats(self, req, **_):
        return _json(self.app.all_stats())

    @route("egw", "/egw/policy", methods=["GET"])
    def policy(self, req, **_):
        return _json(self.app.policy_view())

    @route("egw", "/egw/policy/reload", methods=["POST"])
    def reload(self, req, **_):
        if not self.app.api_token:
            return _json({"error": "policy changes over REST are disabled "
                                   "(set egw_api_token)"}, 403)
        if not self._authorized(req):
            return _json({"error": "bad or missing token"}, 401)
        ok, message = self.app.reload_policy("rest")
        return _json({"ok": ok, "message": message}, 200 if ok else 400)

    @route("egw", "/metrics", methods=["GET"])
    def metrics(self, req, **_):
        return Response(status=200, content_type="text/plain", charset="utf-8",
                        body=self.app.metrics.render())
