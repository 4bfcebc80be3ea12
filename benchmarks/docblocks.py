"""Generated blocks in Markdown docs: the text between an opening and a closing marker
comment is rendered from committed JSON, never typed. One mechanism for every renderer,
each with its own markers (``block``: a regex with groups 1 the opening line, ``name``,
``body`` and 4 the closing marker; models_doc: ``<!-- results:NAME -->``, repro_report:
``<!-- begin:NAME -->``).

``render(name)`` returns a block's text (ending in a newline), or None when its JSON is
missing: :func:`stale` counts such a block as stale, :func:`fill` leaves it as it is.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable


def stale(path: Path, block: re.Pattern, render: Callable[[str], str | None]) -> list[str]:
    """Names of the blocks in ``path`` whose text differs from their rendering."""
    return [m["name"] for m in block.finditer(path.read_text()) if m["body"] != render(m["name"])]


def fill(path: Path, block: re.Pattern, render: Callable[[str], str | None]) -> list[str]:
    """Rewrite the blocks of ``path`` that render; returns their names."""
    filled = []

    def sub(m):
        body = render(m["name"])
        if body is None:
            return m.group(0)
        filled.append(m["name"])
        return m.group(1) + body + m.group(4)

    path.write_text(block.sub(sub, path.read_text()))
    return filled
