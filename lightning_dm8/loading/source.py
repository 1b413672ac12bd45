"""BlockSource: one place that turns a block number into rows — from the cache if there (checked), else one range
query (whose result is then cached, by a background writer). Counts what it did, for the per-epoch statistics."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import lmdb
import numpy as np

from lightning_dm8.errors import DatabaseUnavailableError
from lightning_dm8.loading.assembly import Assembler, group_by_block
from lightning_dm8.loading.cache import BlockCache
from lightning_dm8.loading.cache_format import (
    CorruptBlockError,
    check_packed,
    pack_block,
    packed_views,
    take_packed,
    unpack_block,
)
from lightning_dm8.loading.cache_writer import CacheWriter
from lightning_dm8.tables.block import Block
from lightning_dm8.tables.reader import TableReader, flat_nbytes

log = logging.getLogger(__name__)
_COUNTS = ("queries", "rows_from_db", "rows_from_cache", "bytes_from_db", "db_seconds", "padding_rows",
           "replaced_blocks", "rows", "seconds", "wait_seconds")


@dataclass
class LoadStats:
    """What one epoch (or a stretch of it) cost: queries, rows from the database and from the cache, bytes read from
    the database (the decoded blocks' flat form: row ids and the columns read, see ``flat_nbytes``), seconds
    waiting on the database, cached blocks that failed their check and were read again from the database; and, as
    the loader delivered them, rows handed over, wall seconds, and seconds the consumer waited for a batch."""

    queries: int = 0
    rows_from_db: int = 0
    rows_from_cache: int = 0
    bytes_from_db: int = 0
    db_seconds: float = 0.0
    padding_rows: int = 0
    replaced_blocks: int = 0
    rows: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add(self, other: dict[str, float]) -> None:
        with self._lock:
            for key, value in other.items():
                setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in _COUNTS}

    def take(self) -> dict[str, float]:
        """The counts so far, resetting them (for handing deltas from a worker to the main process)."""
        with self._lock:
            values = self.as_dict()
            for key in values:
                setattr(self, key, type(values[key])())
        return values

    def rates(self) -> dict[str, float]:
        """``rows_per_s`` delivered, ``cache_hit`` (% of rows read that came from the cache) and ``wait_share`` (% of
        the wall time the consumer spent waiting for batches)."""
        read = self.rows_from_cache + self.rows_from_db
        return {
            "rows_per_s": self.rows / self.seconds if self.seconds > 0 else 0.0,
            "cache_hit": 100.0 * self.rows_from_cache / read if read else 0.0,
            "wait_share": 100.0 * min(1.0, self.wait_seconds / self.seconds) if self.seconds > 0 else 0.0,
        }


class BlockSource:
    """Loads aligned blocks ``[k * block_size, (k + 1) * block_size)`` of one table, in one process.

    A cached block is checked before it is served (:func:`~lightning_dm8.loading.cache_format.check_packed`:
    checksum, sizes, layout, row ids). One that fails — corrupt, truncated, or not written by this project for this
    block — is read again from the database and replaces the bad entry; if the database cannot be reached then,
    the read fails with :class:`DatabaseUnavailableError` naming the block and the cache. A bad block is never
    served. The streaming path (:meth:`load`) checks every block it reads (each is read once per epoch); the warm
    path (:meth:`rows`) reads one LMDB snapshot for the whole epoch and checks each block the first time it reads it
    there, so a warm epoch checks and decodes each block once per process instead of once per window.
    """

    def __init__(self, reader: TableReader, block_size: int, cache: BlockCache | None) -> None:
        self.reader = reader
        self.block_size = block_size
        self.cache = cache
        self.writer = CacheWriter(cache) if cache is not None else None
        self.stats = LoadStats()
        info = reader.info
        self._codec, self._label_kind, self._n_rows = info.codec, info.label_kind, info.row_count
        self._epoch_reader: lmdb.Transaction | None = None  # the warm path's snapshot, for the rest of the epoch
        # Blocks met this epoch: (checked views of the snapshot, or the database's rows; True if from the cache). A
        # block with text or bytes is checked here but kept as None: its rows are decoded only as they are asked for.
        self._parts: dict[int, tuple[Block | None, bool]] = {}

    def bounds(self, block: int) -> tuple[int, int]:
        lo = block * self.block_size
        return lo, min(lo + self.block_size, self._n_rows)

    def start_epoch(self) -> None:
        """Check every cached block again before serving it (at least once per epoch and process)."""
        self.end_reading()

    def end_reading(self) -> None:
        """End the warm path's snapshot: its views go first, then the transaction they point into."""
        self._parts.clear()
        reader, self._epoch_reader = self._epoch_reader, None
        if reader is not None:
            reader.abort()

    def load(self, block: int, shared: bool = False) -> Block:
        """The block's rows; a cache miss reads the whole block with one query and caches it.

        ``shared``: other workers or ranks need rows of this block too. Its cache write is committed before this
        returns (not queued), so that they find it in the cache rather than query it again.
        """
        if self.cache is not None:
            packed = self.cache.get(block)
            if packed is not None:
                try:
                    self._check(packed, block)
                    decoded = unpack_block(packed, self._codec, self._label_kind)
                except CorruptBlockError as problem:
                    return self._replace(block, problem)
                self.stats.add({"rows_from_cache": len(decoded)})
                return decoded
        return self._fetch(block, shared)

    def _check(self, packed: bytes | memoryview, block: int) -> None:
        check_packed(packed, self._codec, self._label_kind, *self.bounds(block))

    def _fetch(self, block: int, shared: bool = False) -> Block:
        lo, hi = self.bounds(block)
        start = time.perf_counter()
        decoded = self.reader.read(lo, hi)
        elapsed = time.perf_counter() - start
        packed = pack_block(decoded, self._codec, self._label_kind) if self.writer is not None else None
        if packed is not None and shared:
            self.cache.put(block, packed)  # type: ignore[union-attr]  # a writer exists only with a cache
        elif packed is not None:
            self.writer.submit(block, packed)  # type: ignore[union-attr]  # packed only with a writer
        self.stats.add({"queries": 1, "rows_from_db": len(decoded), "db_seconds": elapsed,
                        "bytes_from_db": flat_nbytes(decoded)})
        return decoded

    def _replace(self, block: int, problem: CorruptBlockError) -> Block:
        """The block read again from the database, its bad cache entry replaced (committed before returning)."""
        lo, hi = self.bounds(block)
        where = (f"cached block {block} (rows {lo}..{hi - 1}) of {self.reader.info.name!r} in "
                 f"{self.cache.path if self.cache is not None else 'the cache'}")
        log.warning("%s is not what this project cached (%s); reading it again from the database", where, problem)
        try:
            decoded = self._fetch(block, shared=True)
        except DatabaseUnavailableError as exc:
            raise DatabaseUnavailableError(
                f"{where} is not what this project cached ({problem}), and reading it again from the database "
                f"failed: {exc}. It is never served: run again once the database is reachable"
            ) from exc
        self.stats.add({"replaced_blocks": 1})
        return decoded

    def cached_row_bytes(self) -> int:
        """Bytes per row of the first cached block (1 KB if none is cached): sizes a warm epoch's windows when rows
        vary in length."""
        packed = self.cache.get(0) if self.cache is not None else None
        return max(1, len(packed) // min(self.block_size, self._n_rows)) if packed else 1024

    def flush(self) -> None:
        """Wait until every block read so far is in the cache (raises a cache failure, e.g. a full disk)."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Finish writing queued blocks into the cache and stop the writer thread (the cache itself stays open:
        its owner is the dataset)."""
        self.end_reading()
        if self.writer is not None:
            self.writer.close()

    def rows(self, row_ids: np.ndarray) -> Block:
        """Arbitrary rows (any order) straight from cached blocks, copying only those rows; misses are fetched.

        Needs a cache: this is the warm path (a full random permutation of the rows). The blocks are read from one
        snapshot kept until :meth:`end_reading` (or the next epoch): each block is checked and decoded into views of
        the cache's pages once, and a block the cache lacks is fetched once, however many windows need its rows.
        """
        assembler = Assembler(len(row_ids))
        from_cache = 0
        for block, group in group_by_block(row_ids, self.block_size):
            positions = row_ids[group] - block * self.block_size
            part, rows, cached = self._part(block, positions)
            assembler.add_rows(part, rows, group)  # copied once, from the cache's pages to their place
            from_cache += len(group) if cached else 0
        self.stats.add({"rows_from_cache": from_cache})
        return assembler.result()

    def _part(self, block: int, positions: np.ndarray) -> tuple[Block, np.ndarray, bool]:
        """Rows ``positions`` of ``block`` as ``(part, its positions)`` for the assembler, and whether they came from
        the cache: the block as met earlier this epoch, else its cache entry (checked; the part views it) or, when it
        is missing or bad, the database."""
        known = self._parts.get(block)
        if known is not None and known[0] is not None:
            return known[0], positions, known[1]
        if self._epoch_reader is None:
            self._epoch_reader = self.cache.reader()  # type: ignore[union-attr]  # the warm path has a cache
        view = self._epoch_reader.get(BlockCache.key(block))
        if view is None:
            return self._remember(block, self._fetch(block)), positions, False
        try:
            if known is None:
                self._check(view, block)
            whole = self._parts[block] = (packed_views(view, self._codec, self._label_kind), True)
            if whole[0] is None:
                return take_packed(view, self._codec, self._label_kind, positions), np.arange(len(positions)), True
        except CorruptBlockError as problem:
            return self._remember(block, self._replace(block, problem)), positions, False
        return whole[0], positions, True

    def _remember(self, block: int, rows: Block) -> Block:
        """A block read from the database for the warm path: kept for the epoch's later windows."""
        self._parts[block] = (rows, False)
        return rows


def describe(stats: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items())
