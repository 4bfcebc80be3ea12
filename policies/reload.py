"""Live reload, the pure part: hold the running policy, reload it from disk, say
what changed.  The gateway wires the triggers (file change, SIGHUP, REST) to
:meth:`PolicyHolder.reload`.

On a good file the gateway must recompute ``enforcement_for`` for every live
session and update the rules of those whose :class:`Enforcement` differs (the
diff here is per class and per device entry, for the log); if
``ReloadResult.wan_changed`` it re-runs :func:`policies.wan.tc_teardown` and
:func:`policies.wan.tc_commands`.  On a bad file nothing changes.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bounded import Overrun, call_with_timeout
from .enforcement import Enforcement, resolve
from .errors import PolicyError
from .limits import PolicyLimits
from .loader import accept_checked, check_policy_file
from .schema import Policy
from .watch import FileWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassChange:
    """How the enforcement of one class changed.  ``device`` is None for the
    class as such, else the label of a device entry (its override for this class).
    ``before``/``after`` None: the entry was added / removed."""

    cls: str
    before: Enforcement | None
    after: Enforcement | None
    device: str | None = None
    fields: tuple[tuple[str, Any, Any], ...] = ()

    def __str__(self) -> str:
        who = self.cls if self.device is None else f"{self.cls} (device {self.device})"
        if self.before is None and self.after is not None:
            return f"{who}: added: {self.after.describe()}"
        if self.after is None and self.before is not None:
            return f"{who}: removed (was {self.before.describe()})"
        parts = ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in self.fields)
        return f"{who}: {parts}"


@dataclass(frozen=True)
class ReloadResult:
    changed: bool
    error: str | None
    diff: list[ClassChange] = field(default_factory=list)
    wan_changed: bool = False

    def summary(self) -> str:
        """One line for the log."""
        if self.error:
            return f"policy not reloaded, keeping the running one: {self.error}"
        if not self.changed:
            return "policy unchanged"
        parts = [str(c) for c in self.diff]
        if self.wan_changed:
            parts.append("wan: HTB classes changed")
        return "policy reloaded: " + ("; ".join(parts) if parts else "no enforcement change")


def _fields_changed(a: Enforcement, b: Enforcement) -> tuple[tuple[str, Any, Any], ...]:
    """``b.changes_from(a)`` without ``devices`` (which device entries applied is not
    itself an enforcement change)."""
    return tuple(c for c in b.changes_from(a) if c[0] != "devices")


def diff_policies(old: Policy, new: Policy) -> list[ClassChange]:
    """The classes (and device overrides) whose enforcement differs between ``old``
    and ``new``.  Class names are those listed in either policy plus ``default``;
    a class that gained or lost its own entry shows as a change from/to ``default``
    (``cls`` field), not as added/removed, since sessions of it keep running."""
    out: list[ClassChange] = []
    names = ["default"] + sorted(set(old.classes) | set(new.classes))
    for name in names:
        a, b = resolve(old, name), resolve(new, name)
        if a != b:
            out.append(ClassChange(name, a, b, None, _fields_changed(a, b)))
    old_dev = {d.label: d for d in old.devices}
    new_dev = {d.label: d for d in new.devices}
    for label in list(old_dev) + [x for x in new_dev if x not in old_dev]:
        od, nd = old_dev.get(label), new_dev.get(label)
        if od is not None and nd is not None and od == nd \
                and old.classes == new.classes and old.default == new.default:
            continue
        dnames = set(names)
        for d in (od, nd):
            if d is not None:
                dnames |= set(d.classes)
        for name in sorted(dnames):
            a = resolve(old, name, (od,) if od else ())
            b = resolve(new, name, (nd,) if nd else ())
            plain_a, plain_b = resolve(old, name), resolve(new, name)
            if a == b or not (_fields_changed(plain_a, a) or _fields_changed(plain_b, b)):
                # unchanged, or the device overrides nothing here: the class change
                # (if any) is already listed
                continue
            out.append(ClassChange(name, a, b, label, _fields_changed(a, b)))
    return out


class PolicyHolder:
    """The running policy of the gateway.

    ``PolicyHolder(path)`` loads ``path`` (raising :class:`PolicyError` if it is
    bad: there is nothing to keep yet).  ``.current`` is the running policy;
    ``.reload()`` reads the file again and swaps it in only if it is valid;
    ``.changed_on_disk()`` says whether the file differs from the last one read
    (mtime and size, then a SHA-256 of the content), so a poller does not retry a
    bad file until it is edited again.  Thread-safe.

    Every load parses off the caller's thread within ``limits.parse_timeout``
    (:mod:`policies.bounded`: the gateway's event loop keeps running), and whatever
    the file causes is a :class:`PolicyError`: ``reload`` never raises for a bad
    file; it sets ``last_error`` and counts the failure in ``rejected``."""

    def __init__(self, path: str | os.PathLike, labels: list[str] | None = None,
                 limits: PolicyLimits | None = None):
        self.path = Path(path)
        self.labels = labels
        self.limits = limits or PolicyLimits.from_env()
        self._lock = threading.RLock()
        self.watch = FileWatch(self.path, content=True, max_bytes=self.limits.max_bytes)
        self._current = self._load()
        self.last_error: str | None = None
        self.rejected = 0

    @property
    def current(self) -> Policy:
        return self._current

    def _load(self) -> Policy:
        """The file parsed and validated off this thread, within the time limit
        (warnings are logged here, on the caller's thread)."""
        limit = self.limits.parse_timeout
        try:
            checked = call_with_timeout(lambda: check_policy_file(
                self.path, self.labels, True, self.limits), limit)
        except Overrun:
            raise PolicyError(f"{self.path}: parsing took longer than {limit:g} s (the limit, "
                              "EGW_POLICY_PARSE_TIMEOUT)", file=str(self.path)) from None
        return accept_checked(*checked, str(self.path))

    def changed_on_disk(self) -> bool:
        with self._lock:
            return self.watch.changed()

    def reload(self) -> ReloadResult:
        """Load the file again.  A bad file: ``error`` set, the running policy kept.
        A good one: it becomes ``current``; ``diff`` lists what changed."""
        with self._lock:
            self.watch.mark()
            try:
                new = self._load()
            except PolicyError as e:
                self.last_error = str(e)
                self.rejected += 1
                log.error("policy %s rejected, keeping the running policy: %s", self.path, e)
                return ReloadResult(False, str(e))
            old = self._current
            self.last_error = None
            if new == old:
                log.info("policy %s reloaded: unchanged", self.path)
                return ReloadResult(False, None)
            result = ReloadResult(True, None, diff_policies(old, new), new.wan != old.wan)
            self._current = new
            log.info("%s", result.summary())
            return result

    def reload_if_changed(self) -> ReloadResult | None:
        """For a file watcher: :meth:`reload` if the file changed, else None."""
        with self._lock:
            return self.reload() if self.changed_on_disk() else None
