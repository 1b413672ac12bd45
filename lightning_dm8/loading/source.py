"""BlockSource: one place that turns a block number into rows — from the cache if there, else one range query
(whose result is then cached, by a background writer). Counts what it did, for the per-epoch statistics."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightning_dm8.loading.cache import BlockCache
from lightning_dm8.loading.cache_writer import CacheWriter
from lightning_dm8.tables.block import Assembler, Block, group_by_block, pack_block, take_packed, unpack_block
from lightning_dm8.tables.ragged import Ragged
from lightning_dm8.tables.reader import TableReader


@dataclass
class LoadStats:
    """What one epoch cost: queries, rows from the database and from the cache, bytes, seconds waiting."""

    queries: int = 0
    rows_from_db: int = 0
    rows_from_cache: int = 0
    bytes_from_db: int = 0
    db_seconds: float = 0.0
    padding_rows: int = 0
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
        return {k: getattr(self, k) for k in
                ("queries", "rows_from_db", "rows_from_cache", "bytes_from_db", "db_seconds", "padding_rows")}

    def take(self) -> dict[str, float]:
        """The counts so far, resetting them (for handing deltas from a worker to the main process)."""
        with self._lock:
            values = self.as_dict()
            for key in values:
                setattr(self, key, type(values[key])())
        return values


class BlockSource:
    """Loads aligned blocks ``[k * block_size, (k + 1) * block_size)`` of one table."""

    def __init__(self, reader: TableReader, block_size: int, cache: BlockCache | None) -> None:
        self.reader = reader
        self.block_size = block_size
        self.cache = cache
        self.writer = CacheWriter(cache) if cache is not None else None
        self.stats = LoadStats()
        info = reader.info
        self._codec, self._label_kind, self._n_rows = info.codec, info.label_kind, info.row_count

    def bounds(self, block: int) -> tuple[int, int]:
        lo = block * self.block_size
        return lo, min(lo + self.block_size, self._n_rows)

    def load(self, block: int, shared: bool = False) -> Block:
        """The block's rows; a cache miss reads the whole block with one query and caches it.

        ``shared``: other workers or ranks need rows of this block too. Its cache write is committed before this
        returns (not queued), so that they find it in the cache rather than query it again.
        """
        if self.cache is not None:
            packed = self.cache.get(block)
            if packed is not None:
                decoded = unpack_block(packed, self._codec, self._label_kind)
                self.stats.add({"rows_from_cache": len(decoded)})
                return decoded
        return self._fetch(block, shared)

    def _fetch(self, block: int, shared: bool = False) -> Block:
        lo, hi = self.bounds(block)
        start = time.perf_counter()
        decoded = self.reader.read(lo, hi)
        elapsed = time.perf_counter() - start
        packed = pack_block(decoded, self._codec, self._label_kind) if self.writer is not None else None
        if packed is not None and shared:
            self.cache.put(block, packed)  # type: ignore[union-attr]
        elif packed is not None:
            self.writer.submit(block, packed)  # type: ignore[union-attr]
        self.stats.add({"queries": 1, "rows_from_db": len(decoded), "db_seconds": elapsed,
                        "bytes_from_db": len(packed) if packed is not None else _nbytes(decoded)})
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
        """Finish writing queued blocks into the cache and stop the writer thread."""
        if self.writer is not None:
            self.writer.close()

    def rows(self, row_ids: np.ndarray) -> Block:
        """Arbitrary rows (any order) straight from cached blocks, copying only those rows; misses are fetched.

        Needs a cache: this is the warm path (a full random permutation of the rows).
        """
        assembler = Assembler(len(row_ids))
        from_cache = 0
        with self.cache.reader() as txn:  # type: ignore[union-attr]
            for block, group in group_by_block(row_ids, self.block_size):
                positions = row_ids[group] - block * self.block_size
                view = txn.get(BlockCache.key(block))
                if view is None:
                    assembler.add(self._fetch(block).take(positions), group)
                else:
                    assembler.add(take_packed(view, self._codec, self._label_kind, positions), group)
                    from_cache += len(group)
        self.stats.add({"rows_from_cache": from_cache})
        return assembler.result()


def _nbytes(block: Block) -> int:
    if isinstance(block.features, (np.ndarray, Ragged)):
        return int(block.features.nbytes)
    return sum(len(f) for f in block.features)  # text and bytes


def describe(stats: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items())
