"""The LMDB block cache: one value per block, so a warm epoch reads local disk and never the database.

One LMDB environment per (database, dataset) under ``cache_dir``; a ``meta`` record holds the dataset's lineage
(the fingerprint of the version that created its table: appends keep it), block size and byte format
(:mod:`~lightning_dm8.loading.cache_format`) it was filled for, and the row count its blocks were read at. Opening
it for another lineage empties it first, so a cache made for a replaced version is never served; opening it for
another row count of the same lineage (an append) drops only the blocks whose rows differ, from the last partial
block on, so an append costs one block plus the new rows on the next epoch. The table's registry entry
is kept next to it, so a run can start from a complete cache while the database server is down
(:func:`cached_info`). Blocks are written in transactions of whole blocks: a run killed while filling leaves only
whole blocks, and the next run fills the missing ones.

The cache is private to its user. Directories are created ``0700`` and LMDB's files ``0600`` whatever the umask;
a cache directory (or ``cache_dir`` itself) that another user owns, or that group or others can write, is refused
(:class:`UnsafeCacheError`): whoever can write there can change what the model trains on. Each block also carries
a checksum, checked when it is read (:class:`~lightning_dm8.loading.source.BlockSource`).

LMDB's lock file makes several workers and ranks on one node share the environment safely. Each process opens its
own handle lazily (one environment per path and process, shared by the cache objects there, through
:class:`~lightning_dm8.db.process_local.ProcessLocal`); a forked child forgets the handles it inherited.

Commits do not wait for the disk. Syncing each commit was most of what the cache cost a cold epoch (PostgreSQL,
50,000 CIFAR rows: 55-57k rows/s syncing, 60-71k without, 62-76k with no cache; 109-143 ``fdatasync`` calls taking
0.15-0.6 s in all), so the environment is opened with ``sync=False`` (LMDB's ``MDB_NOSYNC``) and synced once, when
the writing is done (60-110 ms for that table). LMDB's documentation of that flag: commits do not flush system
buffers to disk, so a *system* crash can corrupt the database or lose the last transactions; a *process* crash
(SIGKILL) loses nothing, because without ``MDB_WRITEMAP`` every commit has written its pages and its meta page into
the OS page cache. A commit is visible to the other processes at once either way (they read the same page cache),
which is all that a flush other workers wait for needs. What the OS crash could leave is guarded by markers:

* Before its first write to an environment, a process creates in the cache directory, durably (file and directory
  fsynced), a marker ``unsynced-<boot id>-<pid>-<tag>`` naming this boot (``/proc/sys/kernel/random/boot_id``), and
  holds an ``flock`` on it while it lives.
* When it is done writing (its cache writer stops, it closes the environment, or it exits) it syncs the environment
  (``env.sync(True)``) and then removes its marker: the sync costs the teardown, not the epoch.
* A process opening the cache first looks at the markers, under an ``flock`` on ``unsynced.lock`` so that openers
  and new writers take turns. A marker whose lock is held belongs to a live writer: left alone. One from another
  boot, no longer locked, means the machine stopped before those writes reached the disk: the cache may be corrupt,
  so its files are removed *before* LMDB opens them (reading a corrupt file can crash the process) and it is filled
  again from the database, with a warning. One of this boot whose writer is gone (killed): its pages are in the OS
  page cache, so one sync makes them durable and the marker is removed.

Where the boot cannot be identified (no ``/proc``), every commit syncs, as it did before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import multiprocessing.util
import os
import pwd
import re
import secrets
import shutil
import stat
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import lmdb

from lightning_dm8.db.engine import Database
from lightning_dm8.db.process_local import ProcessLocal
from lightning_dm8.errors import LightningDM8Error
from lightning_dm8.loading.cache_format import FORMAT
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.registry import DatasetInfo

log = logging.getLogger(__name__)
OnFull = Literal["error", "skip"]
_KEY = struct.Struct(">Q")
DEFAULT_MAP_SIZE = 1 << 40
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_MARKER = re.compile(r"unsynced-(?P<boot>[0-9a-f-]+)-(?P<pid>[0-9]+)-[0-9a-f]+")
_MARKERS_LOCK = "unsynced.lock"
_DATA_FILES = ("data.mdb", "lock.mdb")


class CacheFullError(LightningDM8Error, OSError):
    """The cache directory ran out of space (or the LMDB map is full)."""


class UnsafeCacheError(LightningDM8Error, PermissionError):
    """The cache directory belongs to another user or others can write it: its blocks cannot be trusted."""


def check_on_full(on_full: str) -> OnFull:
    """``on_full`` if it is one of the ``cache_on_full`` choices.

    Raises:
        ValueError: naming the value and the choices.
    """
    choices = get_args(OnFull)
    if on_full not in choices:
        raise ValueError(f"cache_on_full must be one of {', '.join(map(repr, choices))}; got {on_full!r}")
    return on_full  # type: ignore[return-value]  # checked against the Literal's values just above


def cache_path(
    cache_dir: str | os.PathLike[str], db: Database, table: str, columns: Sequence[str] | None = None
) -> Path:
    """Where the cache of ``table`` lives: keyed by the database's identity (never its password) and the table,
    ``<table>-<digest>``. A cache of some feature columns only is ``<table>-<digest>-<digest of those columns>`` (in
    any order): a cache of fewer columns is never served for a wider selection, and removing a dataset's cache finds
    its selections beside it."""
    url = db.sa_url
    key: list[Any] = [db.backend.name, url.host, url.port, url.database, url.username, table]
    digest = _digest(key)
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", table)[:40]
    if columns is not None:  # one selection whatever the order: a reader reads storage order
        return Path(cache_dir).expanduser() / f"{readable}-{digest}-{_digest(sorted(set(columns)))}"
    return Path(cache_dir).expanduser() / f"{readable}-{digest}"


def _digest(key: Any) -> str:
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


# --- private directories and files ----------------------------------------------------------------------------------

def _trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def _make_private_directory(path: Path) -> None:
    """Create ``path`` and its missing parents ``0700`` (whatever the umask); check ``path`` and its parent
    (``cache_dir``): owned by this user (or root) and not writable by group or others. A table directory an older
    version left readable by others is made ``0700``."""
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)  # never more than 0700, whatever the umask
        except FileExistsError:
            continue  # made by another process of this run just now
        os.chmod(directory, 0o700)  # and not less, whatever the umask
    for directory in (path.parent, path):
        _check_directory(directory)
    info = os.stat(path)
    if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        os.chmod(path, 0o700)


def _check_directory(directory: Path) -> None:
    info = os.stat(directory)
    if not _trusted_owner(info.st_uid):
        raise UnsafeCacheError(
            f"the cache directory {directory} belongs to {_user(info.st_uid)}, not to you ({_user(os.geteuid())}): "
            f"blocks written there by someone else would be trained on. Set cache_dir to a directory of your own, "
            f"or remove {directory} if you did not mean to share it"
        )
    writable = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if info.st_mode & bit]
    if writable:
        raise UnsafeCacheError(
            f"the cache directory {directory} can be written by {' and '.join(writable)} "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): blocks written there by someone else would be trained on. "
            f"Run `chmod go-w {directory}` (or `chmod 700 {directory}`), or set cache_dir to a directory only you "
            f"can write"
        )


def _check_files(path: Path) -> None:
    """LMDB's files: the user's own, and readable by nobody else (tightened if an older version left them wider)."""
    for name in _DATA_FILES:
        file = path / name
        info = os.stat(file)
        if not _trusted_owner(info.st_uid):
            raise UnsafeCacheError(
                f"the cache file {file} belongs to {_user(info.st_uid)}, not to you ({_user(os.geteuid())}); "
                f"remove {path} (the cache is filled again from the database) or set cache_dir elsewhere"
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(file, 0o600)


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


# --- writes not synced yet ----------------------------------------------------------------------------------------

def _boot_id() -> str | None:
    """This boot's id, or None where the system does not tell it (then every commit syncs: no marker could tell a
    reboot from a killed writer)."""
    try:
        boot = _BOOT_ID.read_text().strip().lower()
    except OSError:
        return None
    return boot if re.fullmatch(r"[0-9a-f-]+", boot) else None


@contextlib.contextmanager
def _markers_locked(path: Path) -> Iterator[None]:
    """Hold the ``flock`` under which markers are created, judged and removed in the cache directory ``path``."""
    fd = os.open(path / _MARKERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Marker:
    """This process's marker in a cache directory: its writes there may not be on disk yet.

    Its ``flock``, held from creation until removal (or until the process dies), is what tells an opener that the
    writer is alive: unlike a pid, it cannot be reused by another process or hidden by a pid namespace.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def create(cls, directory: Path, boot: str) -> _Marker:
        """A new marker, on disk (file and directory entry fsynced) before this returns."""
        path = directory / f"unsynced-{boot}-{os.getpid()}-{secrets.token_hex(4)}"
        with _markers_locked(directory):  # an opener never sees it before it is locked
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, f"boot {boot} pid {os.getpid()}\n".encode())
                os.fsync(fd)
                _fsync_directory(directory)
            except BaseException:
                cls(path, fd).remove()
                raise
        return cls(path, fd)

    def remove(self) -> None:
        """Once the environment is synced: the marker goes, then its lock."""
        try:
            os.unlink(self.path)
        finally:
            os.close(self.fd)

    def forget(self) -> None:
        """In a forked child: let go of the inherited descriptor (the parent's lock stays held by the parent)."""
        os.close(self.fd)


def _settle_markers(path: Path, boot: str | None) -> list[Path]:
    """Judge the markers in ``path`` (under the markers' lock, before LMDB opens the files): markers of dead writers
    of another boot remove the cache; returns the markers of dead writers of this boot, to be removed once synced."""
    dead = [(path / name, match["boot"], match["pid"]) for name in sorted(os.listdir(path))
            if (match := _MARKER.fullmatch(name)) is not None and _writer_is_gone(path / name)]
    crashed = [(boot_id, pid) for _, boot_id, pid in dead if boot is None or boot_id != boot]
    if crashed:
        log.warning(
            "the block cache at %s was being written when the machine stopped (a system crash or reboot: writer pid "
            "%s of boot %s) before its writes reached the disk; it may be corrupt, so it is removed and filled again "
            "from the database", path, crashed[0][1], crashed[0][0])
        for name in _DATA_FILES:
            _remove(path / name)
        for marker, _, _ in dead:
            _remove(marker)
        return []
    return [marker for marker, _, _ in dead]


def _writer_is_gone(marker: Path) -> bool:
    """Whether nobody holds the marker's lock (its writer died), or its writer removed it just now."""
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # synced and removed by its writer since the listing
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _remove(file: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # a writer removing its own marker does not take the lock
        os.unlink(file)


# --- this process's environments ------------------------------------------------------------------------------------

class _Entry:
    """One open environment of this process: its users, and its marker while it holds writes not synced yet."""

    def __init__(self, env: lmdb.Environment, boot: str | None, path: Path) -> None:
        self.env = env
        self.boot = boot  # None: the environment syncs every commit
        self.path = path
        self.users = 0
        self.marker: _Marker | None = None  # changed only inside a write transaction: LMDB's writer lock guards it

    def before_writing(self) -> None:
        """Called inside a write transaction, before it writes: mark this process's writes as not synced."""
        if self.boot is not None and self.marker is None:
            self.marker = _Marker.create(self.path, self.boot)

    def sync(self) -> None:
        """Flush this process's writes to disk and remove its marker. Inside a write transaction, so that no commit
        of this process lands between the flush and the removal."""
        if self.marker is None:
            return
        with self.env.begin(write=True):
            if self.marker is not None:
                self.env.sync(True)
                marker, self.marker = self.marker, None
                marker.remove()


class _Environments:
    """This process's open LMDB environments, by path, with their number of users (one per open cache handle).

    LMDB refuses to open one environment twice in a process, and two data modules (or a second run in a notebook)
    may well use the same cache. What the process wrote is synced when it closes an environment and when it exits
    (a ``multiprocessing`` finalizer: DataLoader workers end without running ``atexit``).
    """

    def __init__(self) -> None:
        self._open: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        multiprocessing.util.Finalize(None, self.sync_all, exitpriority=10)

    def acquire(self, path: Path, map_size: int) -> _Entry:
        """The environment at ``path``, opened (a private directory made and checked first, markers settled) on
        first use."""
        with self._lock:
            entry = self._open.get(str(path))
            if entry is None:
                _make_private_directory(path)
                boot = _boot_id()
                with _markers_locked(path):
                    synced = _settle_markers(path, boot)
                    env = lmdb.open(str(path), map_size=map_size, max_dbs=2, readahead=False, meminit=False,
                                    max_readers=512, mode=0o600, sync=boot is None)
                    try:
                        _check_files(path)
                        if synced:
                            env.sync(True)  # the killed writers' pages are in the page cache: now on disk
                            for marker in synced:
                                _remove(marker)
                    except BaseException:
                        env.close()
                        raise
                entry = self._open[str(path)] = _Entry(env, boot, path)
            entry.users += 1
            return entry

    def release(self, path: Path) -> None:
        """One user fewer; the environment is synced and closed when its last user is done."""
        with self._lock:
            entry = self._open.get(str(path))
            if entry is None:
                return
            entry.users -= 1
            if entry.users <= 0:
                del self._open[str(path)]
                try:
                    entry.sync()
                finally:
                    entry.env.close()

    def sync_all(self) -> None:
        """At exit: sync what this process wrote (a failure leaves the marker, synced by the next opener)."""
        with self._lock:
            entries = list(self._open.values())
        for entry in entries:
            with contextlib.suppress(lmdb.Error, OSError):
                entry.sync()

    def forget(self) -> None:
        """In a forked child: close the environments inherited from the parent, so that this process can open its own.

        LMDB handles must not be used after a fork, and py-lmdb refuses to open an environment that is still open
        in the process. Closing the child's copy leaves the parent's files and locks alone (its markers too: only
        the child's descriptors close), but it does release the LMDB reader slot of the thread that forked: a
        process that forks workers closes its own handles first
        (:meth:`~lightning_dm8.loading.dataset.BlockDataset.close`, called by ``DM8DataLoader`` before its workers
        start).
        """
        for entry in self._open.values():
            entry.env.close()
            if entry.marker is not None:
                entry.marker.forget()
        self._open.clear()


_ENVIRONMENTS: ProcessLocal[_Environments] = ProcessLocal(_Environments, forget=_Environments.forget)


def _version(lineage: str, block_size: int) -> bytes:
    return json.dumps({"lineage": lineage, "block_size": block_size, "format": FORMAT}).encode()


class BlockCache:
    """Packed blocks of one dataset, valid for one lineage, block size and byte format (and, with ``rows``, for that
    many rows: blocks a different row count would change are dropped when the cache is opened).

    ``info``, when given, is the table's registry entry, stored with the blocks for :func:`cached_info`.

    Ownership: the cache's handle on its environment is process-local (opened by the first use in a process,
    forgotten by a forked child, empty when pickled). The :class:`~lightning_dm8.loading.dataset.BlockDataset`
    holding the cache owns it: the dataset's :meth:`~lightning_dm8.loading.dataset.BlockDataset.close` is what
    closes it; the block source and the cache writer only use it.

    Raises:
        ValueError: ``on_full`` is not ``"error"`` or ``"skip"``.
        UnsafeCacheError: (at first use) the directory belongs to another user or others can write it.
    """

    def __init__(
        self, path: Path, lineage: str, block_size: int, n_blocks: int, *,
        map_size: int = DEFAULT_MAP_SIZE, on_full: OnFull = "error", info: DatasetInfo | None = None,
        rows: int | None = None,
    ) -> None:
        self.path = path
        self.info = info
        self.lineage = lineage
        self.rows = rows
        self.block_size = block_size
        self.n_blocks = n_blocks
        self.map_size = map_size
        self.on_full = check_on_full(on_full)
        self.disabled_reason: str | None = None
        self._handle: ProcessLocal[tuple[_Entry, Any]] = ProcessLocal(self._open, close=self._release)

    def _open(self) -> tuple[_Entry, Any]:
        entry = _ENVIRONMENTS.get().acquire(self.path, self.map_size)
        env = entry.env
        try:
            # One explicit write transaction: ``open_db`` without one waits for the writer lock holding the GIL,
            # which deadlocks against a prefetch thread of this process that holds the lock and needs the GIL.
            with env.begin(write=True) as txn:
                if txn.get(b"meta") is None or txn.get(b"blocks") is None:
                    entry.before_writing()  # a new cache: creating its databases writes
                meta = env.open_db(b"meta", txn=txn)
                blocks = env.open_db(b"blocks", txn=txn)
                self._reset_if_stale(entry, txn, meta, blocks)
        except BaseException:
            _ENVIRONMENTS.get().release(self.path)
            raise
        return entry, blocks

    def _release(self, handle: tuple[_Entry, Any]) -> None:
        _ENVIRONMENTS.get().release(self.path)

    def _reset_if_stale(self, entry: _Entry, txn: lmdb.Transaction, meta: Any, blocks: Any) -> None:
        """Empty a cache made for another lineage, block size or format, drop the blocks another row count changes,
        store the registry entry. Writes only what changed: an unchanged cache commits nothing (and creates no
        marker)."""
        expected = _version(self.lineage, self.block_size)
        stale = txn.get(b"version", db=meta) != expected
        rows = self.rows
        if rows is not None and not stale and txn.get(b"rows", db=meta) == str(rows).encode():
            rows = None  # the row count the blocks were read at: none to drop
        info = _info_to_json(self.info) if self.info is not None and self.info.cache_lineage == self.lineage else None
        if info is not None and txn.get(b"info", db=meta) == info:
            info = None
        if not stale and rows is None and info is None:
            return
        entry.before_writing()
        if stale:
            txn.drop(blocks, delete=False)
            txn.put(b"version", expected, db=meta)
            txn.delete(b"rows", db=meta)
        if rows is not None:
            self._keep_unchanged_blocks(txn, meta, blocks, rows)
        if info is not None:
            txn.put(b"info", info, db=meta)

    def _keep_unchanged_blocks(self, txn: lmdb.Transaction, meta: Any, blocks: Any, rows: int) -> None:
        """Block k holds the same rows at ``old`` and ``rows`` rows only if it is full under both: drop the others."""
        stored = txn.get(b"rows", db=meta)
        old = int(stored) if stored is not None else None
        if old is not None:
            cursor = txn.cursor(db=blocks)
            if cursor.set_range(_KEY.pack(min(old, rows) // self.block_size)):
                while cursor.delete():
                    pass
        txn.put(b"rows", str(rows).encode(), db=meta)

    def get(self, block: int) -> bytes | None:
        """The packed block, or None when it is not cached yet."""
        entry, blocks = self._handle.get()
        with entry.env.begin(db=blocks) as txn:
            return txn.get(_KEY.pack(block))

    def reader(self) -> lmdb.Transaction:
        """A read transaction on one snapshot of the cache, whose ``get(key(block))`` views stay valid until it
        ends (a warm epoch keeps one for the whole epoch: :class:`~lightning_dm8.loading.source.BlockSource`)."""
        entry, blocks = self._handle.get()
        return entry.env.begin(db=blocks, buffers=True)

    @staticmethod
    def key(block: int) -> bytes:
        return _KEY.pack(block)

    def put(self, block: int, packed: bytes | bytearray) -> bool:
        """Store a packed block; False (and caching stops) when the disk is full and ``on_full="skip"``."""
        return self.put_many([(block, packed)])

    def put_many(self, items: Sequence[tuple[int, bytes | bytearray]]) -> bool:
        """Store packed blocks in one transaction (one commit for all): all of them or, on failure, none. The commit
        is visible to every process at once; it reaches the disk at :meth:`sync` (see the module's docstring).

        False (and caching stops) when the disk is full and ``on_full="skip"``.
        """
        if self.disabled_reason is not None or not items:
            return self.disabled_reason is None
        entry, blocks = self._handle.get()
        try:
            with entry.env.begin(write=True, db=blocks) as txn:
                entry.before_writing()
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
        entry, blocks = self._handle.get()
        with entry.env.begin(db=blocks) as txn:
            return int(txn.stat(blocks)["entries"])

    def is_complete(self) -> bool:
        """True when every block of the table is cached (a warm epoch needs no query)."""
        return self.cached_blocks() >= self.n_blocks

    def sync(self) -> None:
        """Flush what this process wrote to disk and remove its marker (nothing to do if it wrote nothing since)."""
        handle = self._handle.peek()
        if handle is not None:
            handle[0].sync()

    def close(self) -> None:
        """Release this process's handle (it opens again on the next use); the last one syncs the environment."""
        self._handle.close()


def cached_info(path: Path, block_size: int) -> DatasetInfo | None:
    """The registry entry stored with the cache at ``path`` if that cache holds every block of the table (for
    ``block_size``), else None: what a run needs to start when the database cannot be reached.

    Raises:
        UnsafeCacheError: the directory belongs to another user or others can write it.
    """
    if not (path / "data.mdb").exists():
        return None
    environments = _ENVIRONMENTS.get()
    env = environments.acquire(path, DEFAULT_MAP_SIZE).env
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            blocks = env.open_db(b"blocks", txn=txn, create=False)
            raw_info, raw_version = txn.get(b"info", db=meta), txn.get(b"version", db=meta)
            entries = int(txn.stat(blocks)["entries"])
    except lmdb.NotFoundError:
        return None
    finally:
        environments.release(path)
    if raw_info is None or raw_version is None:
        return None
    info = _info_from_json(raw_info)
    complete = entries >= -(-info.row_count // block_size)
    if raw_version != _version(info.cache_lineage, block_size) or not complete:
        return None
    return info


def _info_to_json(info: DatasetInfo) -> bytes:
    return json.dumps({
        "name": info.name, "row_count": info.row_count, "codec": info.codec.to_json(), "label_kind": info.label_kind,
        "fingerprint": info.fingerprint, "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(), "version": info.version, "physical": info.physical,
        "lineage": info.lineage,
    }).encode()


def _info_from_json(raw: bytes) -> DatasetInfo:
    data = json.loads(raw)
    created, updated = (dt.datetime.fromisoformat(data[k]) for k in ("created_at", "updated_at"))
    return DatasetInfo(data["name"], int(data["row_count"]), FeatureCodec.from_json(data["codec"]),
                       data["label_kind"], data["fingerprint"], created, updated, int(data.get("version", 0)),
                       data.get("physical", ""), data.get("lineage", ""))


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
