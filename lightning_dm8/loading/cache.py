"""The LMDB block cache: one value per block, so a warm epoch reads local disk and never the database.

One LMDB environment per (database, table) under ``cache_dir``; a ``meta`` record holds the table fingerprint
and block size it was filled for. Opening it for another fingerprint empties it first, so a cache made for an
older version of the table is never served. The table's registry entry is kept next to it, so a run can start
from a complete cache while the database server is down (:func:`cached_info`). Blocks are written in
transactions of whole blocks: a run killed while filling leaves only whole blocks, and the next run fills the
missing ones.
LMDB's lock file makes several workers and ranks on one node share the environment safely; each process opens
its own handle lazily (one environment per path and process, shared by the cache objects there).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import struct
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lmdb

from lightning_dm8.db.engine import Database
from lightning_dm8.errors import LightningDM8Error
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.registry import DatasetInfo

OnFull = Literal["error", "skip"]
_KEY = struct.Struct(">Q")
DEFAULT_MAP_SIZE = 1 << 40


_OPEN_CACHES: weakref.WeakSet[BlockCache] = weakref.WeakSet()

# This process's open environments, by path, with their number of users. LMDB refuses to open one environment
# twice in a process, and two data modules (or a second run in a notebook) may well use the same cache.
_ENVIRONMENTS: dict[str, list[Any]] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def _acquire_environment(path: Path, map_size: int) -> lmdb.Environment:
    """This process's environment at ``path``, opened on first use and shared by every cache object there."""
    with _ENVIRONMENTS_LOCK:
        entry = _ENVIRONMENTS.get(str(path))
        if entry is None:
            path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(str(path), map_size=map_size, max_dbs=2, readahead=False, meminit=False,
                            max_readers=512)
            entry = _ENVIRONMENTS[str(path)] = [env, 0]
        entry[1] += 1
        return entry[0]


def _release_environment(path: Path) -> None:
    """One user fewer; the environment closes when its last user is done."""
    with _ENVIRONMENTS_LOCK:
        entry = _ENVIRONMENTS.get(str(path))
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _ENVIRONMENTS[str(path)]
            entry[0].close()


def _forget_inherited_environments() -> None:
    """In a forked child, close the LMDB handles inherited from the parent, so the child can open its own.

    LMDB handles must not be used across fork; closing the child's copy leaves the parent's untouched.
    """
    global _ENVIRONMENTS_LOCK
    _ENVIRONMENTS_LOCK = threading.Lock()  # the parent may have held it while forking
    for env, _ in _ENVIRONMENTS.values():
        env.close()
    _ENVIRONMENTS.clear()
    for cache in list(_OPEN_CACHES):
        cache.close_inherited()


os.register_at_fork(after_in_child=_forget_inherited_environments)


class CacheFullError(LightningDM8Error, OSError):
    """The cache directory ran out of space (or the LMDB map is full)."""


def cache_path(cache_dir: str | os.PathLike[str], db: Database, table: str) -> Path:
    """Where the cache of ``table`` lives: keyed by the database's identity (never its password) and the table."""
    url = db.sa_url
    identity = json.dumps([db.backend, url.host, url.port, url.database, url.username, table])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", table)[:40]
    return Path(cache_dir).expanduser() / f"{readable}-{digest}"


class BlockCache:
    """Packed blocks of one dataset table, valid for one fingerprint and block size.

    ``info``, when given, is the table's registry entry, stored with the blocks for :func:`cached_info`.
    """

    def __init__(
        self, path: Path, fingerprint: str, block_size: int, n_blocks: int, *,
        map_size: int = DEFAULT_MAP_SIZE, on_full: OnFull = "error", info: DatasetInfo | None = None,
    ) -> None:
        self.path = path
        self.info = info
        self.fingerprint = fingerprint
        self.block_size = block_size
        self.n_blocks = n_blocks
        self.map_size = map_size
        self.on_full = on_full
        self.disabled_reason: str | None = None
        self._env: lmdb.Environment | None = None
        self._blocks: Any = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_env=None, _blocks=None, _pid=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _open(self) -> tuple[lmdb.Environment, Any]:
        if self._env is None or self._pid != os.getpid():
            with self._lock:
                return self._open_locked()
        return self._env, self._blocks

    def _open_locked(self) -> tuple[lmdb.Environment, Any]:
        if self._env is None or self._pid != os.getpid():
            env = _acquire_environment(self.path, self.map_size)
            # One explicit write transaction: ``open_db`` without one waits for the writer lock holding the GIL,
            # which deadlocks against a prefetch thread of this process that holds the lock and needs the GIL.
            with env.begin(write=True) as txn:
                meta = env.open_db(b"meta", txn=txn)
                blocks = env.open_db(b"blocks", txn=txn)
                self._reset_if_stale(txn, meta, blocks)
            self._env, self._blocks, self._pid = env, blocks, os.getpid()
            _OPEN_CACHES.add(self)
        return self._env, self._blocks

    def close_inherited(self) -> None:
        """Drop handles opened by the parent process (the shared environment itself is closed by the fork hook)."""
        if self._env is not None and self._pid != os.getpid():
            self._env = self._blocks = None
            self._lock = threading.Lock()

    def _reset_if_stale(self, txn: lmdb.Transaction, meta: Any, blocks: Any) -> None:
        expected = json.dumps({"fingerprint": self.fingerprint, "block_size": self.block_size}).encode()
        if txn.get(b"version", db=meta) != expected:
            txn.drop(blocks, delete=False)
            txn.put(b"version", expected, db=meta)
        if self.info is not None and self.info.fingerprint == self.fingerprint:
            txn.put(b"info", _info_to_json(self.info), db=meta)

    def get(self, block: int) -> bytes | None:
        """The packed block, or None when it is not cached yet."""
        env, blocks = self._open()
        with env.begin(db=blocks) as txn:
            return txn.get(_KEY.pack(block))

    def reader(self) -> lmdb.Transaction:
        """A read transaction whose ``get(key(block), buffers)`` views stay valid until it ends."""
        env, blocks = self._open()
        return env.begin(db=blocks, buffers=True)

    @staticmethod
    def key(block: int) -> bytes:
        return _KEY.pack(block)

    def put(self, block: int, packed: bytes) -> bool:
        """Store a packed block; False (and caching stops) when the disk is full and ``on_full="skip"``."""
        return self.put_many([(block, packed)])

    def put_many(self, items: Sequence[tuple[int, bytes]]) -> bool:
        """Store packed blocks in one transaction (one commit and sync for all): all of them or, on failure, none.

        False (and caching stops) when the disk is full and ``on_full="skip"``.
        """
        if self.disabled_reason is not None or not items:
            return self.disabled_reason is None
        env, blocks = self._open()
        try:
            with env.begin(write=True, db=blocks) as txn:
                for block, packed in items:
                    txn.put(_KEY.pack(block), packed)
        except (lmdb.MapFullError, lmdb.DiskError, OSError, lmdb.Error) as exc:
            if not _is_full(exc, self.path, sum(len(packed) for _, packed in items)):
                raise
            message = (f"the block cache at {self.path} is full ({type(exc).__name__}: {exc}); free space there, "
                       f"point cache_dir elsewhere, or pass cache_on_full='skip' to keep reading from the database")
            if self.on_full == "error":
                raise CacheFullError(message) from exc
            self.disabled_reason = message
            return False
        return True

    def cached_blocks(self) -> int:
        env, blocks = self._open()
        with env.begin(db=blocks) as txn:
            return int(txn.stat(blocks)["entries"])

    def is_complete(self) -> bool:
        """True when every block of the table is cached (a warm epoch needs no query)."""
        return self.cached_blocks() >= self.n_blocks

    def close(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            _release_environment(self.path)
        self._env = self._blocks = None


def cached_info(path: Path, block_size: int) -> DatasetInfo | None:
    """The registry entry stored with the cache at ``path`` if that cache holds every block of the table (for
    ``block_size``), else None: what a run needs to start when the database cannot be reached."""
    if not (path / "data.mdb").exists():
        return None
    env = _acquire_environment(path, DEFAULT_MAP_SIZE)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            blocks = env.open_db(b"blocks", txn=txn, create=False)
            raw_info, raw_version = txn.get(b"info", db=meta), txn.get(b"version", db=meta)
            entries = int(txn.stat(blocks)["entries"])
    except lmdb.NotFoundError:
        return None
    finally:
        _release_environment(path)
    if raw_info is None or raw_version is None:
        return None
    info = _info_from_json(raw_info)
    version = json.loads(raw_version)
    complete = entries >= -(-info.row_count // block_size)
    if version != {"fingerprint": info.fingerprint, "block_size": block_size} or not complete:
        return None
    return info


def _info_to_json(info: DatasetInfo) -> bytes:
    return json.dumps({
        "name": info.name, "row_count": info.row_count, "codec": info.codec.to_json(), "label_kind": info.label_kind,
        "fingerprint": info.fingerprint, "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
    }).encode()


def _info_from_json(raw: bytes) -> DatasetInfo:
    data = json.loads(raw)
    created, updated = (dt.datetime.fromisoformat(data[k]) for k in ("created_at", "updated_at"))
    return DatasetInfo(data["name"], int(data["row_count"]), FeatureCodec.from_json(data["codec"]),
                       data["label_kind"], data["fingerprint"], created, updated)


def _is_full(exc: BaseException, path: Path, needed: int) -> bool:
    """Whether a failed write means the map or the disk is full.

    LMDB reports a page flush that the disk cut short as EIO ("Input/output error") rather than ENOSPC, so an I/O
    error counts as full when the disk has no room left for the block (plus a margin for LMDB's own pages).
    """
    text = str(exc).lower()
    if isinstance(exc, lmdb.MapFullError) or "no space" in text or "disk quota" in text or "enospc" in text:
        return True
    if "input/output error" in text or isinstance(exc, lmdb.DiskError):
        try:
            return shutil.disk_usage(path).free < 2 * needed + (1 << 20)
        except OSError:
            return False
    return False
