"""``DM8CheckpointIO``: Lightning's storage plugin for checkpoints kept in a database model table.

Lightning calls ``save_checkpoint``/``remove_checkpoint`` on global rank 0 only and ``load_checkpoint`` on every
rank (``strategies/strategy.py``: ``save_checkpoint``, ``remove_checkpoint``, ``load_checkpoint``). Which paths
mean rows is described in :mod:`lightning_dm8.checkpoint.paths`; any other path is an ordinary file, handled as
``TorchCheckpointIO`` would (with the password masked all the same).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH
from typing_extensions import override

from lightning_dm8.checkpoint.errors import CheckpointNotFoundError, InvalidCheckpointPathError
from lightning_dm8.checkpoint.paths import (
    BEST,
    LATEST,
    CheckpointRef,
    is_db_path,
    parse_ckpt_path,
    parse_virtual_path,
)
from lightning_dm8.checkpoint.policy import Retention, versions_to_delete
from lightning_dm8.checkpoint.records import meta_from_checkpoint
from lightning_dm8.checkpoint.schema import DEFAULT_TABLE, KIND_MANUAL, KIND_PERIODIC, check_table_name
from lightning_dm8.checkpoint.secrets import mask_secrets, secrets_of, serialize_checkpoint
from lightning_dm8.checkpoint.store import DEFAULT_CHUNK_SIZE, CheckpointStore
from lightning_dm8.db.coerce import as_database
from lightning_dm8.db.engine import Database
from lightning_dm8.db.process_local import ProcessLocal

log = logging.getLogger(__name__)


def _cpu(storage: Any, location: Any) -> Any:
    return storage


class _Handles:
    """What each process of a ``DM8CheckpointIO`` opens for itself: its stores and its locks."""

    def __init__(self) -> None:
        self.stores: dict[str, CheckpointStore] = {}
        self.lock = threading.Lock()
        # AsyncCheckpointIO saves from a worker thread while ModelCheckpoint removes from the training loop: writes
        # take turns, so a remove never deletes bytes that a save in flight is about to point at.
        self.writing = threading.RLock()


class DM8CheckpointIO(CheckpointIO):
    """Save, load and remove Lightning checkpoints as rows of a model table.

    Args:
        url: database URL (or a :class:`Database`). Leave the password out and set ``LIGHTNING_DM8_PASSWORD``.
        table: the model table used for ``dm8:<run>:<selector>`` paths (virtual paths name their own table).
        chunk_size: bytes per chunk row (lowered below MySQL's ``max_allowed_packet`` automatically).

    Usable on its own (``Trainer(plugins=[DM8CheckpointIO(url)])`` with
    ``ModelCheckpoint(dirpath=checkpoint_dirpath(table, run))``), but normally installed by ``DM8Checkpoint``.
    """

    def __init__(self, url: str | Database, table: str = DEFAULT_TABLE, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        check_table_name(table)
        self.db = as_database(url)
        self.table = table
        self.chunk_size = int(chunk_size)
        self._retention: dict[tuple[str, str], set[Retention]] = {}
        # Picklable for spawned DDP processes: stores and locks are opened again on the other side.
        self._handles: ProcessLocal[_Handles] = ProcessLocal(_Handles)

    @override
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db.url!r}, table={self.table!r})"

    def store(self, table: str | None = None) -> CheckpointStore:
        """The store of ``table`` (default: this IO's table)."""
        name = table or self.table
        handles = self._handles.get()
        with handles.lock:
            if name not in handles.stores:
                handles.stores[name] = CheckpointStore(self.db, name, self.chunk_size)
            return handles.stores[name]

    def add_retention(self, run: str, policy: Retention, table: str | None = None) -> None:
        """Prune ``run`` by ``policy`` after each of its saves, beside the policies already added for it: each
        deletes only the checkpoints saved under its own monitor and mode (see :func:`versions_to_delete`)."""
        self._retention.setdefault((table or self.table, run), set()).add(policy)

    def resolve_path(self, path: _PATH) -> CheckpointRef | None:
        """The checkpoint a path names (its table filled in), or None for an ordinary file path."""
        if is_db_path(path):
            ref = parse_ckpt_path(str(path))
            return CheckpointRef(ref.run, ref.selector, self.table)
        return parse_virtual_path(path)

    # -- CheckpointIO ----------------------------------------------------------------------------------------------

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        """Serialise with ``torch.save`` (password masked) and store it under the checkpoint name ``path`` gives."""
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint does not take storage_options; got {storage_options!r}"
            )
        ref = self.resolve_path(path)
        secrets = secrets_of(self.db)
        if ref is None:
            TorchCheckpointIO().save_checkpoint(mask_secrets(checkpoint, secrets), path)  # an ordinary file
            return
        if ref.selector in (BEST, LATEST) or isinstance(ref.selector, int):
            raise InvalidCheckpointPathError(
                f"cannot save to {path!r}: 'best', 'latest' and version numbers select existing checkpoints; save to "
                f"'dm8:{ref.run}:<name>' instead"
            )
        kind = KIND_MANUAL if is_db_path(path) else KIND_PERIODIC
        meta = meta_from_checkpoint(checkpoint, ref.run, str(ref.selector), kind, str(path))
        store = self.store(ref.table)
        payload = serialize_checkpoint(checkpoint, secrets, f"{ref.run!r} in {store.where}")
        with self._handles.get().writing:
            info = store.save(ref.run, payload, meta)
            log.info("saved checkpoint %r version %d (%s) to %s", info.run, info.version, info.name, store.where)
            policies = self._retention.get((store.table, ref.run))
            if policies:
                self.prune(ref.run, policies, ref.table)

    def prune(self, run: str, policies: Retention | Iterable[Retention], table: str | None = None) -> list[int]:
        """Delete the periodic checkpoints of ``run`` that a policy owns and none keeps; returns their versions."""
        store = self.store(table)
        with self._handles.get().writing:
            victims = versions_to_delete(store.infos(run), policies)
            if victims:
                store.delete(run, victims)
                log.info("retention removed versions %s of run %r from %s", victims, run, store.where)
        return victims

    @override
    def load_checkpoint(
        self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Load from the model table (``dm8:`` and virtual paths) or from a file; maps to CPU unless told otherwise.

        ``weights_only`` as Lightning documents it (``trainer.fit(..., weights_only=...)`` passes it here): from the
        database, ``None`` and ``True`` rebuild only tensors and plain data and raise
        :class:`~lightning_dm8.checkpoint.errors.UnsafeCheckpointError` for anything else; ``False`` loads any object
        of a checkpoint you trust, with an :class:`~lightning_dm8.checkpoint.errors.UnsafeLoadWarning`. A file is
        read by ``TorchCheckpointIO`` (``None`` is ``torch.load``'s default, ``True`` since torch 2.6).
        """
        location: Callable[..., Any] | Any = _cpu if map_location is None else map_location
        ref = self.resolve_path(path)
        if ref is None:
            return TorchCheckpointIO().load_checkpoint(path, map_location=location, weights_only=weights_only)
        store = self.store(ref.table)
        info = store.resolve(ref.run, ref.selector)
        log.info("loading checkpoint %r version %d (%s) from %s", info.run, info.version, info.name, store.where)
        return store.load(info, location, weights_only)

    @override
    def remove_checkpoint(self, path: _PATH) -> None:
        """Delete what ``path`` names; nothing there is not an error (removes may race an async save)."""
        ref = self.resolve_path(path)
        if ref is None:
            TorchCheckpointIO().remove_checkpoint(path)
            return
        store = self.store(ref.table)
        try:
            with self._handles.get().writing:
                if isinstance(ref.selector, str) and ref.selector not in (BEST, LATEST):
                    store.delete_named(ref.run, ref.selector)
                else:
                    store.delete(ref.run, [store.resolve(ref.run, ref.selector).version])
        except CheckpointNotFoundError:
            log.debug("nothing to remove at %s", path)

    @override
    def teardown(self) -> None:
        """Close this process's connections (they reopen lazily if the Trainer runs again)."""
        self.db.dispose()
