"""Existence checks that turn a missing data file into an error telling the user where to get it."""

from __future__ import annotations

from pathlib import Path


def require_file(path: str | Path, hint: str) -> Path:
    """Return ``path`` as a Path if it is a file.

    A bare ``No such file`` gives no clue how to obtain a public data set, so
    the error carries ``hint``, which says where the real files come from.

    Args:
        path: The file that must exist.
        hint: Where users get the file, appended to the error message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: If ``path`` is not an existing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {hint}")
    return path
