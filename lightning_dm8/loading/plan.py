"""Epoch plans: which rows each (rank, worker) delivers, in what order. Pure functions of their arguments.

The table's rows are cut into aligned blocks of ``block_size`` rows (the unit of a range query and of the cache).
An epoch's global sequence is every row once (blocks in a shuffled order when shuffling); ranks take equal
contiguous shares of it — padded by repeating the first rows when the count does not divide, at most
``world_size - 1`` rows — and workers take whole batches of their rank's share.

Orders:
* ``shuffle=False``: row id order.
* cold (``mode="cold"``): CorgiPile — shuffled block order, then rows shuffled within windows of
  ``buffer_blocks`` blocks, so reads stay sequential on the primary key.
* warm (``mode="warm"``, the cache holds the table): a full random permutation of all rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["cold", "warm"]


@dataclass(frozen=True)
class PlanConfig:
    """Everything an epoch plan depends on besides (epoch, rank, worker)."""

    n_rows: int
    block_size: int
    batch_size: int
    world_size: int = 1
    num_workers: int = 1
    seed: int = 0
    shuffle: bool = False
    drop_last: bool = False
    buffer_blocks: int = 8


def rows_per_rank(cfg: PlanConfig) -> int:
    """Rows each rank delivers per epoch: equal on every rank so that DDP never waits on a finished rank."""
    if cfg.drop_last:
        return (cfg.n_rows // cfg.world_size) // cfg.batch_size * cfg.batch_size
    return math.ceil(cfg.n_rows / cfg.world_size)


def padding_rows(cfg: PlanConfig) -> int:
    """Rows delivered twice per epoch to give every rank an equal share (0 with drop_last; < world_size)."""
    return 0 if cfg.drop_last else rows_per_rank(cfg) * cfg.world_size - cfg.n_rows


def batches_per_rank(cfg: PlanConfig) -> int:
    """The exact number of batches each rank yields per epoch (the loader's ``len()``)."""
    return math.ceil(rows_per_rank(cfg) / cfg.batch_size)


def worker_batch_range(cfg: PlanConfig, worker: int) -> tuple[int, int]:
    """The rank's batches ``[first, last)`` that ``worker`` produces: contiguous, as even as possible."""
    total = batches_per_rank(cfg)
    return worker * total // cfg.num_workers, (worker + 1) * total // cfg.num_workers


def worker_batch_counts(cfg: PlanConfig) -> list[int]:
    return [hi - lo for lo, hi in (worker_batch_range(cfg, w) for w in range(cfg.num_workers))]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([abs(int(k)) for k in key])


def row_dtype(cfg: PlanConfig) -> np.dtype:
    """int32 when row ids and the block size fit (half the memory of an epoch's orders), else int64.

    The block size counts too: consumers compute ``order // block_size`` and ``block * block_size``, and NumPy
    refuses a Python int that does not fit the array's type.
    """
    return np.dtype(np.int32) if max(cfg.n_rows, cfg.block_size) <= np.iinfo(np.int32).max else np.dtype(np.int64)


def _sequence_part(cfg: PlanConfig, epoch: int, mode: Mode, lo: int, hi: int) -> np.ndarray:
    """Positions ``[lo, hi)`` of the epoch's global sequence (every row id once, before rank split and in-window
    shuffles), computed without materialising the rest of it where the order allows."""
    n, dtype = cfg.n_rows, row_dtype(cfg)
    if hi <= lo:
        return np.empty(0, dtype=dtype)
    if not cfg.shuffle:
        return np.arange(lo, hi, dtype=dtype)
    rng = _rng(cfg.seed, epoch, 0x5EED)
    if mode == "warm":
        # ``rng.shuffle`` of an arange draws exactly what ``rng.permutation(n)`` does, in the smaller dtype.
        permutation = np.arange(n, dtype=dtype)
        rng.shuffle(permutation)
        return permutation[lo:hi].copy()
    # Whole blocks in shuffled order, rows in order within a block: only the blocks overlapping [lo, hi) are expanded.
    n_blocks = math.ceil(n / cfg.block_size)
    starts = rng.permutation(n_blocks).astype(np.int64) * cfg.block_size
    lengths = np.minimum(starts + cfg.block_size, n) - starts
    ends = np.cumsum(lengths)
    begins = ends - lengths
    first, last = int(np.searchsorted(ends, lo, side="right")), int(np.searchsorted(begins, hi, side="left"))
    expanded = np.repeat((starts - begins)[first:last].astype(dtype), lengths[first:last])
    expanded += np.arange(begins[first], ends[last - 1], dtype=dtype)
    return expanded[lo - begins[first] : hi - begins[first]]


def worker_order(cfg: PlanConfig, epoch: int, rank: int, worker: int, mode: Mode) -> np.ndarray:
    """The row ids ``worker`` of ``rank`` delivers in ``epoch``, in delivery order (dtype :func:`row_dtype`).

    Only the worker's slice of the global sequence is built: a worker holds O(its share) of row ids, not several
    O(table) arrays (a warm epoch's permutation still needs one array of every row id, briefly).
    """
    n, share = cfg.n_rows, rows_per_rank(cfg)
    first, last = worker_batch_range(cfg, worker)
    # The padded sequence repeats its first ``padding`` rows after the last one (at most the n rows there are).
    padded = n + min(padding_rows(cfg), n)
    lo = min(rank * share + min(first * cfg.batch_size, share), padded)
    hi = min(rank * share + min(last * cfg.batch_size, share), padded)
    rows = _sequence_part(cfg, epoch, mode, min(lo, n), min(hi, n))
    if hi > n:
        rows = np.concatenate([rows, _sequence_part(cfg, epoch, mode, max(lo, n) - n, hi - n)])
    if cfg.shuffle and mode == "cold":
        window = max(1, cfg.buffer_blocks) * cfg.block_size
        for i, start in enumerate(range(0, len(rows), window)):
            part = rows[start : start + window]
            rows[start : start + window] = part[_rng(cfg.seed, epoch, rank, worker, i, 0xC0).permutation(len(part))]
    return rows
