"""File-change watching for live reload (the policy file, the model bundle's files).

:class:`FileWatch` answers "has any of these files changed since :meth:`FileWatch.mark`?"
from their mtime and size; with ``content=True`` a file that was touched but holds the
same bytes (SHA-256) does not count, so a poller neither reloads it nor retries a bad
file until it is edited again. Pure polling: the caller decides how often.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable


class FileWatch:
    def __init__(self, paths: str | os.PathLike | Iterable[str | os.PathLike],
                 content: bool = False, max_bytes: int | None = None):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        self.content = content
        #: hash at most this many bytes (+1) of a file: enough to see any change that could
        #: make a size-capped file loadable, without reading a huge one
        self.max_bytes = max_bytes
        self.mark()

    def _stat(self) -> tuple:
        out = []
        for p in self.paths:
            try:
                st = os.stat(p)
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def _digest(self) -> tuple:
        out = []
        for p in self.paths:
            try:
                with open(p, "rb") as fh:
                    data = fh.read() if self.max_bytes is None else fh.read(self.max_bytes + 1)
                out.append(hashlib.sha256(data).hexdigest())
            except OSError:
                out.append(None)
        return tuple(out)

    def mark(self, known: bool = True) -> None:
        """The files as they are now count as seen (``known=False``: their stat is
        noted but their content is not, so the next edit counts even if it restores
        the bytes seen before)."""
        self._sig = self._stat()
        self._hash = self._digest() if self.content and known else None

    def changed(self) -> bool:
        sig = self._stat()
        if sig == self._sig:
            return False
        if self.content and self._digest() == self._hash:
            self._sig = sig          # touched, same content
            return False
        return True
