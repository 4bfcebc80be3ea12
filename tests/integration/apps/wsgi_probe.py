"""A minimal Ryu app registering a WSGI controller: proves the patched Ryu's REST layer works."""
import json

from ryu.app.wsgi import ControllerBase, WSGIApplication, route
from ryu.base import app_manager
from webob import Response


class ProbeController(ControllerBase):
    @route("probe", "/probe/{name}", methods=["GET"])
    def hello(self, req, name, **_):
        body = json.dumps({"hello": name, "ryu": "ok"})
        return Response(content_type="application/json", body=body.encode())


class WsgiProbe(app_manager.RyuApp):
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kwargs["wsgi"].register(ProbeController, {})
