"""How checkpoint paths name rows of the model table.

Two forms reach the database, everything else is an ordinary file:

* ``dm8:<run>:<selector>`` (what users type, e.g. ``ckpt_path="dm8:resnet20:best"``), in the model table of the
  ``DM8CheckpointIO``/``DM8Checkpoint`` in use. The selector is ``best`` (best monitored metric, by the mode stored
  with the run), ``latest`` (highest complete version), a version number, or a checkpoint name (ModelCheckpoint's
  file stem such as ``last`` or ``epoch=3-step=400``). The run is everything between the first and the last colon.
* ``<VIRTUAL_ROOT>/<table>/<run>/<name>.ckpt``: the paths ModelCheckpoint builds from the virtual ``dirpath`` that
  ``DM8Checkpoint`` gives it. They never exist on disk; they are the stable address of a checkpoint *name*, which is
  why ``best_model_path`` can be passed back to ``trainer.test(ckpt_path=...)`` and why it stays valid in a later
  process (ModelCheckpoint's state restores it only when ``dirpath`` is unchanged, so ``dirpath`` must not depend
  on the working directory).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from lightning_dm8.checkpoint.errors import InvalidCheckpointPathError
from lightning_dm8.checkpoint.schema import MAX_NAME_LENGTH

SCHEME = "dm8:"
FILE_EXTENSION = ".ckpt"
VIRTUAL_ROOT = os.path.join(os.path.abspath(os.sep), "lightning_dm8")
"""Root of the virtual checkpoint directories: nothing is ever written below it."""

BEST = "best"
LATEST = "latest"
Selector = int | str
"""A version number, ``"best"``, ``"latest"`` or a checkpoint name."""

_BAD_RUN = re.compile(r"[/\\:\x00-\x1f]")
_FORM_HINT = "use 'dm8:<run>:best', 'dm8:<run>:latest', 'dm8:<run>:<version number>' or 'dm8:<run>:<checkpoint name>'"


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint in a model table: ``table`` None means the table of whoever resolves the reference."""

    run: str
    selector: Selector
    table: str | None = None


def check_run(run: str) -> str:
    """A run name that fits the table and a path segment: no ``/``, ``\\``, ``:`` or control characters."""
    if not isinstance(run, str) or not run.strip():
        raise InvalidCheckpointPathError(f"the run name must be a non-empty string; got {run!r}")
    if len(run) > MAX_NAME_LENGTH or _BAD_RUN.search(run):
        raise InvalidCheckpointPathError(
            f"run name {run!r} is not allowed: use at most {MAX_NAME_LENGTH} characters and no '/', '\\', ':' or "
            f"control characters"
        )
    return run


def parse_selector(text: Selector) -> Selector:
    """``"best"``/``"latest"`` as they are, digits as a version number, anything else as a checkpoint name."""
    if isinstance(text, bool):
        raise InvalidCheckpointPathError(
            f"a checkpoint version must be a number, 'best', 'latest' or a name; got {text!r}"
        )
    if isinstance(text, int):
        if text < 1:
            raise InvalidCheckpointPathError(f"checkpoint versions start at 1; got {text}")
        return text
    if not isinstance(text, str) or not text.strip():
        raise InvalidCheckpointPathError(f"empty checkpoint selector {text!r}: {_FORM_HINT}")
    text = text.strip()
    if text.isdigit():
        return parse_selector(int(text))
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidCheckpointPathError(
            f"checkpoint name {text[:40]!r}... is longer than {MAX_NAME_LENGTH} characters"
        )
    return text


def is_db_path(path: object) -> bool:
    """Whether ``path`` uses the ``dm8:`` form (well formed or not)."""
    return isinstance(path, str) and path.startswith(SCHEME)


def parse_ckpt_path(path: str) -> CheckpointRef:
    """Parse ``dm8:<run>:<selector>``; raise :class:`InvalidCheckpointPathError` naming the form when it is bad."""
    body = path[len(SCHEME):] if is_db_path(path) else None
    if body is None or ":" not in body:
        raise InvalidCheckpointPathError(f"bad checkpoint path {path!r}: {_FORM_HINT}")
    run, selector = body.rsplit(":", 1)
    if not run.strip() or not selector.strip():
        raise InvalidCheckpointPathError(
            f"bad checkpoint path {path!r}: the run and the selector must not be empty; {_FORM_HINT}"
        )
    try:
        return CheckpointRef(check_run(run), parse_selector(selector))
    except InvalidCheckpointPathError as exc:
        raise InvalidCheckpointPathError(f"bad checkpoint path {path!r}: {exc}") from None


def format_ckpt_path(run: str, selector: Selector) -> str:
    """The ``dm8:`` path of a checkpoint: the inverse of :func:`parse_ckpt_path`."""
    return f"{SCHEME}{check_run(run)}:{parse_selector(selector)}"


def checkpoint_dirpath(table: str, run: str) -> str:
    """The virtual ``ModelCheckpoint.dirpath`` for ``run`` in model table ``table``."""
    return os.path.join(VIRTUAL_ROOT, table, check_run(run))


def parse_virtual_path(path: object) -> CheckpointRef | None:
    """The checkpoint a ModelCheckpoint path below :data:`VIRTUAL_ROOT` names, or None for any other path."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    text = os.path.normpath(os.fspath(path))
    prefix = VIRTUAL_ROOT + os.sep
    if not isinstance(text, str) or not text.startswith(prefix):
        return None
    parts = text[len(prefix):].split(os.sep)
    if len(parts) < 3 or not parts[-1].endswith(FILE_EXTENSION):
        raise InvalidCheckpointPathError(
            f"bad virtual checkpoint path {text!r}: expected {VIRTUAL_ROOT}/<table>/<run>/<name>{FILE_EXTENSION}"
        )
    table, run, *name_parts = parts
    name = "/".join(name_parts)[: -len(FILE_EXTENSION)]
    if not name or name in (BEST, LATEST) or name.isdigit():
        raise InvalidCheckpointPathError(
            f"checkpoint name {name!r} in {text!r} would be read as a selector; give ModelCheckpoint another filename"
        )
    return CheckpointRef(check_run(run), parse_selector(name), table)
