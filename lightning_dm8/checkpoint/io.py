"""``DM8CheckpointIO``: Lightning's storage plugin for checkpoints kept in a database model table.

Lightning calls ``save_checkpoint``/``remove_checkpoint`` on global rank 0 only and ``load_checkpoint`` on every
rank (``strategies/strategy.py``: ``save_checkpoint``, ``remove_checkpoint``, ``load_checkpoint``). Which paths
mean rows is described in :mod:`lightning_dm8.checkpoint.paths`; any other path is an ordinary file, handled as
``TorchCheckpointIO`` would (with the password masked all the same).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io.torch_plugin import TorchCheckpointIO

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
from lightning_dm8.db.engine import Database

log = logging.getLogger(__name__)


def _cpu(storage: Any, location: Any) -> Any:
    return storage


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
        self.db = url if isinstance(url, Database) else Database(url)
        self.table = table
        self.chunk_size = int(chunk_size)
        self._stores: dict[str, CheckpointStore] = {}
        self._retention: dict[tuple[str, str], Retention] = {}
        self._lock = threading.Lock()
        # AsyncCheckpointIO saves from a worker thread while ModelCheckpoint removes from the training loop: writes
        # take turns, so a remove never deletes bytes that a save in flight is about to point at.
        self._writing = threading.RLock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db.url!r}, table={self.table!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for spawned DDP processes: locks and stores are rebuilt on the other side."""
        state = self.__dict__.copy()
        state.update(_stores={}, _lock=None, _writing=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._writing = threading.RLock()

    def store(self, table: str | None = None) -> CheckpointStore:
        """The store of ``table`` (default: this IO's table)."""
        name = table or self.table
        with self._lock:
            if name not in self._stores:
                self._stores[name] = CheckpointStore(self.db, name, self.chunk_size)
            return self._stores[name]

    def set_retention(self, run: str, policy: Retention | None, table: str | None = None) -> None:
        """Prune ``run`` by ``policy`` after each of its saves (None: keep everything)."""
        key = (table or self.table, run)
        if policy is None:
            self._retention.pop(key, None)
        else:
            self._retention[key] = policy

    def resolve_path(self, path: _PATH) -> CheckpointRef | None:
        """The checkpoint a path names (its table filled in), or None for an ordinary file path."""
        if is_db_path(path):
            ref = parse_ckpt_path(str(path))
            return CheckpointRef(ref.run, ref.selector, self.table)
        return parse_virtual_path(path)

    # -- CheckpointIO ----------------------------------------------------------------------------------------------

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
        with self._writing:
            info = store.save(ref.run, payload, meta)
            log.info("saved checkpoint %r version %d (%s) to %s", info.run, info.version, info.name, store.where)
            policy = self._retention.get((store.table, ref.run))
            if policy is not None:
                self.prune(ref.run, policy, ref.table)

    def prune(self, run: str, policy: Retention, table: str | None = None) -> list[int]:
        """Delete the periodic checkpoints of ``run`` that ``policy`` does not keep; returns their versions."""
        store = self.store(table)
        with self._writing:
            victims = versions_to_delete(store.infos(run), policy)
            if victims:
                store.delete(run, victims)
                log.info("retention removed versions %s of run %r from %s", victims, run, store.where)
        return victims

    def load_checkpoint(
        self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Load from the model table (``dm8:`` and virtual paths) or from a file; maps to CPU unless told otherwise."""
        location: Callable[..., Any] | Any = _cpu if map_location is None else map_location
        ref = self.resolve_path(path)
        if ref is None:
            return TorchCheckpointIO().load_checkpoint(path, map_location=location, weights_only=weights_only)
        store = self.store(ref.table)
        info = store.resolve(ref.run, ref.selector)
        log.info("loading checkpoint %r version %d (%s) from %s", info.run, info.version, info.name, store.where)
        return store.load(info, location, weights_only)

    def remove_checkpoint(self, path: _PATH) -> None:
        """Delete what ``path`` names; nothing there is not an error (removes may race an async save)."""
        ref = self.resolve_path(path)
        if ref is None:
            TorchCheckpointIO().remove_checkpoint(path)
            return
        store = self.store(ref.table)
        try:
            with self._writing:
                if isinstance(ref.selector, str) and ref.selector not in (BEST, LATEST):
                    store.delete_named(ref.run, ref.selector)
                else:
                    store.delete(ref.run, [store.resolve(ref.run, ref.selector).version])
        except CheckpointNotFoundError:
            log.debug("nothing to remove at %s", path)

    def teardown(self) -> None:
        """Close this process's connections (they reopen lazily if the Trainer runs again)."""
        self.db.dispose()
