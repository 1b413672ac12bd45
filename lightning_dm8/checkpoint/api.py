"""Checkpoints in the database without a Trainer: load, list, delete, export as a normal ``.ckpt`` file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from lightning_dm8.checkpoint.errors import CheckpointCorruptError
from lightning_dm8.checkpoint.paths import LATEST, Selector, check_run, parse_selector
from lightning_dm8.checkpoint.records import CheckpointInfo
from lightning_dm8.checkpoint.schema import DEFAULT_TABLE
from lightning_dm8.checkpoint.store import CheckpointStore
from lightning_dm8.db.engine import Database


@contextmanager
def _opened(url: str | Database, table: str) -> Iterator[CheckpointStore]:
    """A store on ``url``; connections opened for a URL given as text are closed again at the end."""
    store = CheckpointStore(url, table)
    try:
        yield store
    finally:
        if not isinstance(url, Database):
            store.db.dispose()


def load_checkpoint(
    url: str | Database,
    run: str,
    version: Selector = LATEST,
    *,
    table: str = DEFAULT_TABLE,
    map_location: Any = None,
    weights_only: bool = True,
) -> dict[str, Any]:
    """The checkpoint dict (as ``torch.load`` returns it) of ``run`` at ``version``: a number, ``"latest"``,
    ``"best"`` (by the monitored metric and mode stored with the run) or a checkpoint name such as ``"last"``.

    Tensors land on the CPU unless ``map_location`` says otherwise. Only tensors and plain data are rebuilt
    (``weights_only=True``), so nothing stored in the model table runs; ``weights_only=False`` loads any object of a
    checkpoint you trust (you saved it, nobody else can write the table) and warns with ``UnsafeLoadWarning``.

    Raises ``CheckpointNotFoundError`` (listing what exists), ``CheckpointCorruptError`` (size or SHA-256 mismatch,
    impossible header) or ``UnsafeCheckpointError`` (an object ``weights_only=True`` does not rebuild).
    """
    with _opened(url, table) as store:
        return store.load(store.resolve(run, version), "cpu" if map_location is None else map_location, weights_only)


def list_checkpoints(
    url: str | Database, run: str | None = None, *, table: str = DEFAULT_TABLE, include_incomplete: bool = False
) -> list[CheckpointInfo]:
    """Header rows of ``run`` (or of every run), oldest first; unfinished saves only with ``include_incomplete``."""
    with _opened(url, table) as store:
        return store.infos(run, include_incomplete=include_incomplete)


def delete_checkpoints(
    url: str | Database,
    run: str,
    versions: Iterable[Selector] | None = None,
    *,
    table: str = DEFAULT_TABLE,
    incomplete: bool = False,
) -> int:
    """Delete ``versions`` of ``run`` (numbers, ``"best"``, ``"latest"`` or names; None: all of them), or with
    ``incomplete=True`` only its unfinished saves. Returns how many checkpoints were deleted.

    A version number deletes even a checkpoint whose header is corrupt (which nothing can load or resolve)."""
    check_run(run)
    with _opened(url, table) as store:
        if incomplete:
            return store.delete_incomplete(run)
        if versions is None:
            chosen = [c.version for c in store.infos(run, include_incomplete=True)]
        else:
            chosen = []
            for version in versions:
                selector = parse_selector(version)
                try:
                    chosen.append(store.resolve(run, selector).version)
                except CheckpointCorruptError:
                    if not isinstance(selector, int):
                        raise
                    chosen.append(selector)
        return store.delete(run, chosen)


def export_checkpoint(
    url: str | Database, run: str, version: Selector, path: str | os.PathLike[str], *, table: str = DEFAULT_TABLE
) -> CheckpointInfo:
    """Write the verified bytes of a stored checkpoint to ``path`` (atomically): a normal ``.ckpt`` file that
    ``torch.load`` and ``LightningModule.load_from_checkpoint`` read. The bytes are not unpickled here; whoever
    loads the file decides what to trust (``torch.load`` rebuilds only data by default)."""
    with _opened(url, table) as store:
        info = store.resolve(run, version)
        payload = store.read(info)
    target = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".ldm8-export-", dir=os.path.dirname(target))
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return info
