"""One identifier check for every table the project creates: dataset, model, chunk, predictions and view names.

Names are always quoted by the dialect, so any printable text is safe in SQL; what is checked here is what would
otherwise fail late or silently: lengths the server would truncate or reject after a table was filled, characters
a server cannot store in a name, and control characters that would reach a terminal through ``ls``.
"""

from __future__ import annotations

import unicodedata

from lightning_dm8.db.backends import Backend
from lightning_dm8.errors import InvalidInputError

MAX_NAME_CHARS = 120


def name_problem(backend: Backend | None, name: str, *, suffix: str = "") -> str | None:
    """Why ``name`` (plus ``suffix``, for companion tables such as ``_chunks``) cannot be a table name on
    ``backend`` (None: only the rules every backend shares), or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "it is empty"
    if "\x00" in name:
        return "it contains a NUL character"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return "it contains a control character (such as a newline, a tab or an escape)"
    if len(name) > MAX_NAME_CHARS:
        return f"it is {len(name)} characters long; use at most {MAX_NAME_CHARS}"
    problem = backend.name_problem(name + suffix) if backend is not None else None
    if problem and suffix:
        return f"{problem} (with the {suffix!r} added for its companion table)"
    return problem


def check_table_name(
    backend: Backend | None, name: str, what: str, *, suffix: str = "", error: type[Exception] = InvalidInputError,
    used_as: str = "a table name",
) -> None:
    """Raise ``error`` naming the ``what`` (``"dataset name"``, ``"model table"``...) when ``name`` cannot be used
    (``used_as``: ``"a column name"`` for a column; the same rules hold)."""
    problem = name_problem(backend, name, suffix=suffix)
    if problem:
        shown = repr(name[:40] + "...") if isinstance(name, str) and len(name) > 40 else repr(name)
        raise error(f"{what} {shown} cannot be used as {used_as}: {problem}; choose another name")
