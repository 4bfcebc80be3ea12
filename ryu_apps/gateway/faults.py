"""Errors reported once per cause, not once per packet.

A broken model raises on every batch and a flood of garbage can fail the same way
thousands of times a second: logging each one would bury the log and cost more
CPU than the packets. :class:`FaultLog` logs the first occurrence of a *cause*
(its kind, the exception type and its message with numbers blanked out) at
ERROR, counts it once in ``egw_errors_total{kind}``, and only counts repeats
(``egw_error_repeats_total{kind}``, :attr:`FaultLog.causes`).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

_NUM = re.compile(r"0x[0-9a-fA-F]+|\d+")


def cause_of(kind: str, exc: BaseException | str) -> tuple[str, str]:
    """The identity of a fault: kind + exception type + message without numbers."""
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = str(exc)
    return kind, _NUM.sub("N", text)[:300]


@dataclass
class Cause:
    kind: str
    text: str
    first_message: str
    count: int = 1


class FaultLog:
    """Log and count faults once per cause (bounded: at most ``max_causes`` kept)."""

    def __init__(self, metrics=None, logger: logging.Logger | None = None,
                 max_causes: int = 256):
        self.metrics = metrics
        self.log = logger or logging.getLogger("egw.faults")
        self.max_causes = max_causes
        self.causes: dict[tuple[str, str], Cause] = {}
        self.overflow = 0

    def report(self, kind: str, exc: BaseException | str, context: str = "",
               level: int = logging.ERROR, cause: str | None = None) -> bool:
        """Record one occurrence; returns True when the cause is new (it was logged).
        ``cause``: an explicit identity instead of the message with numbers blanked."""
        key = (kind, cause) if cause is not None else cause_of(kind, exc)
        c = self.causes.get(key)
        if c is not None:
            c.count += 1
            if self.metrics is not None:
                self.metrics.error_repeats.labels(kind).inc()
            return False
        msg = f"{context}: {exc!r}" if context else repr(exc)
        if len(self.causes) >= self.max_causes:
            # A pathological stream of distinct messages: keep counting, stop logging.
            self.overflow += 1
            if self.metrics is not None:
                self.metrics.error_repeats.labels(kind).inc()
            return False
        self.causes[key] = Cause(kind, key[1], msg)
        if self.metrics is not None:
            self.metrics.errors.labels(kind).inc()
        self.log.log(level, "%s error (first of its kind; repeats are counted, not logged): %s",
                     kind, msg)
        return True

    def count(self, kind: str | None = None) -> int:
        """Occurrences (first + repeats) of every cause, or of one kind."""
        return sum(c.count for c in self.causes.values() if kind is None or c.kind == kind)

    def describe(self) -> list[dict]:
        return [{"kind": c.kind, "cause": c.text, "count": c.count, "first": c.first_message}
                for c in self.causes.values()]
