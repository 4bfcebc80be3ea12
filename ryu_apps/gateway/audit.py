"""The audit trail: one JSON object per line for every decision, policy change, model
change and restore (``--egw-decision-log PATH``), and the reader behind
``egw decisions tail|grep``.

Each line is written and flushed on its own (``write`` + ``flush``: in the kernel before
the call returns), so a SIGTERM or a crash of the controller loses no line it wrote;
the file is opened in append mode, so a restart goes on where the last run stopped.
When a line would take the file past ``max_bytes`` the file is rotated first
(``PATH`` -> ``PATH.1`` -> ... ``PATH.<backups>``, the oldest dropped).

Every line has ``ts`` (Unix time), ``event`` and the event's fields:

- ``classified``, ``policy-update``, ``restored``: a session's decision (session id,
  dpid, flow, device, class, confidence, reason, action, policy entry, DSCP, rate, meter);
- ``policy``: a policy loaded or rejected (trigger, path, ok, summary or error);
- ``model``: a model bundle loaded or rejected (trigger, path, ok, message);
  ``device-model``: the same for the device model;
- ``restore``: a switch's read-back adopted (sessions, stale rules, meters) or given up;
- ``device-new``, ``device``, ``device-approved``, ``device-policy``: a LAN
  device seen, identified (type, kind, confidence, packets needed, quarantined), approved,
  re-quarantined or released by a policy reload (``ryu_apps.gateway.devices``);
- ``device-dns-open``, ``device-dns-refused``: hosts a DNS answer opened to a quarantined
  device (name, addresses, next hop, timeouts, hosts closed to make room); a DNS answer
  or query of it refused (result; at most one line per device, result and minute,
  every one counted in ``egw_quarantine_dns_total``) (``ryu_apps.gateway.dnsopen``).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

log = logging.getLogger("egw.audit")

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5


class DecisionLog:
    """Append-only JSONL writer with size rotation; never raises into the caller
    (a full disk or a removed directory is reported once per cause to ``on_error``)."""

    def __init__(self, path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS, clock: Callable[[], float] = time.time,
                 on_error: Callable[[Exception], None] | None = None):
        self.path = Path(path)
        self.max_bytes, self.backups, self.clock = max_bytes, backups, clock
        self.on_error = on_error or (lambda exc: log.error("decision log %s: %s", path, exc))
        self.lines = 0
        self._f = None
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._f = os.fdopen(fd, "a", encoding="utf-8")
        self._size = self._f.tell()

    def write(self, event: str, **fields) -> None:
        rec = {"ts": round(self.clock(), 6), "event": event, **fields}
        line = json.dumps(rec, sort_keys=True, default=str, separators=(",", ":")) + "\n"
        try:
            if self._f is None:
                self._open()
            if self._size and self._size + len(line.encode()) > self.max_bytes:
                self._rotate()
            self._f.write(line)
            self._f.flush()
            self._size += len(line.encode())
            self.lines += 1
        except (OSError, ValueError) as exc:
            self.on_error(exc)
            self._close()

    def _rotate(self) -> None:
        self._close()
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def _close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
        self._f = None

    close = _close


class NullLog:
    """No ``--egw-decision-log``: nothing is written."""

    lines = 0

    def write(self, event: str, **fields) -> None:
        pass

    def close(self) -> None:
        pass


# ---- reading -----------------------------------------------------------------------
def files(path: str | os.PathLike) -> list[Path]:
    """The log and its rotated files, oldest first."""
    p = Path(path)
    rotated = sorted((q for q in p.parent.glob(p.name + ".*") if q.suffix[1:].isdigit()),
                     key=lambda q: -int(q.suffix[1:]))
    return rotated + ([p] if p.exists() else [])


def records(path: str | os.PathLike) -> Iterator[dict]:
    """Every record, oldest first; a line that is not JSON (a torn last line of a disk
    that filled up) comes back as ``{"event": "unreadable", "line": ...}``."""
    for f in files(path):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                    yield rec if isinstance(rec, dict) else {"event": "unreadable",
                                                             "line": line[:200]}
                except ValueError:
                    yield {"event": "unreadable", "line": line[:200]}


def matches(rec: dict, pattern: re.Pattern | None, fields: dict[str, str]) -> bool:
    if any(str(rec.get(k)) != v for k, v in fields.items()):
        return False
    return pattern is None or bool(pattern.search(json.dumps(rec, sort_keys=True)))


def select(path, pattern: str | None = None, fields: dict[str, str] | None = None,
           last: int | None = None) -> list[dict]:
    """Records matching ``pattern`` (a regex on the JSON line) and ``fields``
    (``key=value``: equal as text); only the ``last`` N when given."""
    rx = re.compile(pattern) if pattern else None
    hits: Iterable[dict] = (r for r in records(path) if matches(r, rx, fields or {}))
    return list(deque(hits, maxlen=last) if last else hits)
