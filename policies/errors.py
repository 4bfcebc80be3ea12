"""Errors raised for bad policy files: user-facing, naming file, line and key."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PolicyIssue:
    """One problem found in a policy file.

    ``key`` is the dotted path of the offending key (``classes.p2p.rate_limit.kbps``),
    ``line``/``column`` are 1-based (``None`` when unknown), ``severity`` is
    ``"error"`` or ``"warning"``.
    """

    file: str
    line: int | None
    column: int | None
    key: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.key}:" if self.key else ""
        prefix = "" if self.severity == "error" else f" {self.severity}:"
        return f"{where}:{prefix}{key} {self.message}"


class PolicyError(Exception):
    """A policy file (or a model's labels.json) that cannot be used.

    ``str(err)`` is one line naming file, line and key of every problem
    (joined with "; "); ``err.issues`` holds them one by one.
    """

    user_facing = True

    def __init__(self, message: str | None = None, issues: list[PolicyIssue] | None = None,
                 file: str | None = None):
        self.issues: list[PolicyIssue] = list(issues or [])
        self.file = file
        if message is None:
            errors = [i for i in self.issues if i.severity == "error"] or self.issues
            message = "; ".join(str(i) for i in errors)
        super().__init__(message)
