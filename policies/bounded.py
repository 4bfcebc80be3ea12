"""Run a parse off the caller's thread, with a time limit.

The gateway runs on eventlet's single thread (Ryu's hub, every thread primitive
monkey-patched); a policy parse on it would stop packet-ins and keepalives for as
long as it takes.  :func:`call_with_timeout` runs the function in a native OS
thread; when eventlet is loaded the caller waits through ``eventlet.tpool`` (the
hub keeps running other greenthreads meanwhile), otherwise on a plain thread.
Nothing here imports Ryu; eventlet only when the process already uses it.

A function that overruns is abandoned (Python threads cannot be killed): the
policy limits (size, nesting, aliases) bound how long it can go on.
"""
from __future__ import annotations

import sys
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class Overrun(Exception):
    """The function did not finish within the time limit."""


def call_with_timeout(fn: Callable[[], T], timeout: float) -> T:
    """``fn()`` in a worker OS thread; raises :class:`Overrun` after ``timeout`` s,
    re-raises whatever ``fn`` raises."""
    if "eventlet" in sys.modules:
        return _via_tpool(fn, timeout)
    return _via_thread(fn, timeout)


def _via_tpool(fn: Callable[[], T], timeout: float) -> T:
    import eventlet
    from eventlet import tpool

    with eventlet.Timeout(timeout, False):
        return tpool.execute(fn)
    raise Overrun(f"no result within {timeout:g} s")


def _via_thread(fn: Callable[[], T], timeout: float) -> T:
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=run, name="egw-policy-parse", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise Overrun(f"no result within {timeout:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
