"""The gateway's REST API, as the emulation sees it (the only way in besides flow dumps)."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


class GatewayClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 5.0):
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def sessions(self, page: int = 1000) -> list[dict]:
        """Every session, page by page (``?limit=&after=``)."""
        out: list[dict] = []
        after = ""
        while True:
            doc = self._call("GET", f"/egw/sessions?limit={page}"
                                    + (f"&after={after}" if after else ""))
            if not isinstance(doc, dict):        # a gateway without pages
                return doc
            out += doc["sessions"]
            after = doc.get("next")
            if not after:
                return out

    def health(self) -> dict:
        return self._call("GET", "/egw/health")

    def status(self) -> dict:
        return self._call("GET", "/egw/status")

    def metrics(self) -> str:
        req = urllib.request.Request(self.base + "/metrics")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return resp.read().decode()

    def stats(self) -> dict:
        return self._call("GET", "/egw/stats")

    def policy(self) -> dict:
        return self._call("GET", "/egw/policy")

    def devices(self) -> dict:
        return self._call("GET", "/egw/devices")

    def approve_device(self, mac: str) -> dict:
        return self._call("POST", f"/egw/devices/{mac}/approve", {})

    def reload_policy(self) -> dict:
        return self._call("POST", "/egw/policy/reload", {})

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.stats()
                return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
