"""Existence checks that turn a missing data file or folder into an error telling the user where to get it."""

from __future__ import annotations

from pathlib import Path


def require_path(path: str | Path, hint: str, *, folder: bool = False) -> Path:
    """Return ``path`` as a Path if it is an existing file (or folder, with ``folder=True``).

    A bare ``No such file`` gives no clue how to obtain a public data set, so
    the error carries ``hint``, which says where the real files come from.

    Args:
        path: The file or folder that must exist.
        hint: Where users get it, appended to the error message.
        folder: Require a folder instead of a file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: If ``path`` is not an existing file (or folder).
    """
    path = Path(path)
    if not (path.is_dir() if folder else path.is_file()):
        raise FileNotFoundError(f"{'folder ' if folder else ''}{path} not found: {hint}")
    return path
