"""What the command line prints: text made safe for a terminal, and tables.

Names come from the database, where anyone who can create a table chooses them: an escape sequence in a dataset
name could move the cursor, rewrite earlier lines or hide text. Every name and message is printed through
:func:`printable`, which shows control and format characters as Python escapes (``\\x1b``, ``\\n``, ``\\u202e``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from lightning_dm8.db.urls import mask_text

_UNSAFE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


def printable(text: object) -> str:
    """``text`` with control and format characters escaped, so that printing it cannot drive the terminal."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _UNSAFE_CATEGORIES else c
        for c in value
    )


def one_line(message: str) -> str:
    """``message`` on one line, secrets masked and control characters escaped: how every error is printed."""
    return printable(mask_text(" ".join(part.strip() for part in message.splitlines() if part.strip())))


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, a rule under the header; every cell through :func:`printable`."""
    cells = [[printable(cell) for cell in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)



def format_size(count: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``20.3 MiB``, ``1.2 GiB``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
