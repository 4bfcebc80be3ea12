"""The REST API's access rules, the pure part (no Ryu, no webob): where the token comes
from, checking it, rate-limited logging of failures, and session pages.

Token sources, first found wins: ``--egw-api-token-file PATH`` (refused when group or
others may read or write it), the ``EGW_API_TOKEN`` environment variable, then
``--egw-api-token T`` (works, but any local user sees it in ``/proc/PID/cmdline``: a
warning is logged). No token: every endpoint but ``/egw/health`` answers 403.
"""
from __future__ import annotations

import heapq
import hmac
import ipaddress
import logging
import os
import stat
import time
from pathlib import Path
from typing import Callable, Iterable

ENV_TOKEN = "EGW_API_TOKEN"
#: ``GET /egw/sessions``: sessions per page when ``limit`` is not given, and at most
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class TokenError(ValueError):
    """The token file cannot be used (named in the message, never the token)."""


def read_token_file(path: str | os.PathLike) -> str:
    """The token in ``path`` (surrounding whitespace stripped); :class:`TokenError` when
    the file is missing, empty, not a regular file, or group/other may access it."""
    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise TokenError(f"{p}: not a regular file")
        if st.st_mode & 0o077:
            raise TokenError(f"{p}: mode {stat.S_IMODE(st.st_mode):04o} lets group or others "
                             "read it; chmod 600 it")
        token = p.read_text(encoding="utf-8", errors="strict")[:4096].strip()
    except TokenError:
        raise
    except (OSError, UnicodeError) as exc:
        raise TokenError(f"{p}: cannot read the token ({exc.__class__.__name__})") from None
    if not token:
        raise TokenError(f"{p}: empty")
    return token


def find_token(token_file: str = "", token_arg: str = "", environ=None,
               logger: logging.Logger | None = None) -> tuple[str, str]:
    """(token, source) from the file, the environment or the argument (in that order);
    ("", reason) when none is usable. Errors are logged, never the token."""
    log = logger or logging.getLogger("egw.auth")
    environ = os.environ if environ is None else environ
    if token_file:
        try:
            return read_token_file(token_file), "file"
        except TokenError as exc:
            log.error("REST API locked (every endpoint but /egw/health answers 403): %s", exc)
            return "", "bad-file"
    if environ.get(ENV_TOKEN, "").strip():
        return environ[ENV_TOKEN].strip(), "env"
    if token_arg:
        log.warning("the REST token was given as egw_api_token: on the command line any local "
                    "user can read it (/proc/PID/cmdline); prefer --egw-api-token-file or %s",
                    ENV_TOKEN)
        return token_arg, "argument"
    return "", "none"


def given_token(headers) -> str:
    """The token a request carries: ``X-EGW-Token: T`` or ``Authorization: Bearer T``."""
    given = headers.get("X-EGW-Token", "") or ""
    auth = headers.get("Authorization", "") or ""
    if not given and auth.startswith("Bearer "):
        given = auth[7:]
    return given.strip()


def is_loopback(addr: str | None) -> bool:
    try:
        return ipaddress.ip_address((addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


class Guard:
    """Decides each request and logs refused ones, at most ``log_lines`` per
    ``interval`` seconds (the rest are counted and summed up in the next line).
    ``delay``: seconds a refused request waits before its answer (``sleep``: the
    event loop's, so other requests go on)."""

    def __init__(self, token: str, *, metrics_open: bool = False, log_lines: int = 5,
                 interval: float = 60.0, delay: float = 0.0,
                 logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.token, self.metrics_open = token, metrics_open
        self.log_lines, self.interval, self.delay = log_lines, interval, delay
        self.log = logger or logging.getLogger("egw.auth")
        self.clock, self.sleep = clock, sleep
        self.failures = 0          # every refused request
        self._window_start = None
        self._logged = 0
        self._suppressed = 0

    def check(self, path: str, headers, remote: str | None) -> int:
        """200 (go on), 401 (no or wrong token) or 403 (the API has no token)."""
        if path == "/egw/health":
            return 200
        if path == "/metrics" and self.metrics_open and is_loopback(remote):
            return 200
        if not self.token:
            status = 403
        else:
            given = given_token(headers)
            ok = bool(given) and hmac.compare_digest(given.encode(), self.token.encode())
            status = 200 if ok else 401
        if status != 200:
            self._refused(path, remote, status)
        return status

    def _refused(self, path: str, remote: str | None, status: int) -> None:
        self.failures += 1
        now = self.clock()
        if self._window_start is None or now - self._window_start >= self.interval:
            if self._suppressed:
                self.log.warning("REST: %d more refused request(s) not logged in the last "
                                 "%.0f s", self._suppressed, self.interval)
            self._window_start, self._logged, self._suppressed = now, 0, 0
        if self._logged < self.log_lines:
            self._logged += 1
            self.log.warning("REST: %s %s from %s refused (%s)", status,
                             path[:80].encode("ascii", "replace").decode(), remote or "?",
                             "no token configured" if status == 403 else "bad or missing token")
        else:
            self._suppressed += 1
        if self.delay > 0:
            self.sleep(self.delay)


def page_params(params) -> tuple[int, tuple[int, int] | None]:
    """(limit, after) of ``?limit=&after=`` (``after``: a session id, or ``id:dpid-hex``
    as ``next`` gives it). ValueError on a bad value."""
    raw = params.get("limit")
    limit = DEFAULT_PAGE if raw in (None, "") else int(raw)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    limit = min(limit, MAX_PAGE)
    raw = params.get("after")
    if raw in (None, ""):
        return limit, None
    sid, _, dpid = str(raw).partition(":")
    return limit, (int(sid), int(dpid, 16) if dpid else 1 << 64)


def page(keys: Iterable[tuple[int, int]], limit: int, after: tuple[int, int] | None
         ) -> tuple[list[tuple[int, int]], str | None]:
    """The first ``limit`` (session id, dpid) keys after ``after``, in order, and the
    cursor of the next page (None on the last). O(n log limit): only the page's
    sessions are then turned into JSON."""
    rest = (k for k in keys if after is None or k > after)
    chosen = heapq.nsmallest(limit + 1, rest)
    more = len(chosen) > limit
    chosen = chosen[:limit]
    nxt = f"{chosen[-1][0]}:{chosen[-1][1]:016x}" if more else None
    return chosen, nxt
