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


def global_sequence(cfg: PlanConfig, epoch: int, mode: Mode) -> np.ndarray:
    """Every row id once, in the epoch's global order (before rank split and in-window shuffles)."""
    n = cfg.n_rows
    if not cfg.shuffle:
        return np.arange(n, dtype=np.int64)
    rng = _rng(cfg.seed, epoch, 0x5EED)
    if mode == "warm":
        return rng.permutation(n).astype(np.int64)
    n_blocks = math.ceil(n / cfg.block_size)
    starts = rng.permutation(n_blocks).astype(np.int64) * cfg.block_size
    lengths = np.minimum(starts + cfg.block_size, n) - starts
    return np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(n, dtype=np.int64)


def worker_order(cfg: PlanConfig, epoch: int, rank: int, worker: int, mode: Mode) -> np.ndarray:
    """The row ids ``worker`` of ``rank`` delivers in ``epoch``, in delivery order."""
    sequence = global_sequence(cfg, epoch, mode)
    share = rows_per_rank(cfg)
    padding = padding_rows(cfg)
    if padding:
        sequence = np.concatenate([sequence, sequence[:padding]])
    rank_rows = sequence[rank * share : (rank + 1) * share]
    first, last = worker_batch_range(cfg, worker)
    rows = rank_rows[first * cfg.batch_size : last * cfg.batch_size].copy()
    if cfg.shuffle and mode == "cold":
        window = max(1, cfg.buffer_blocks) * cfg.block_size
        for i, start in enumerate(range(0, len(rows), window)):
            part = rows[start : start + window]
            rows[start : start + window] = part[_rng(cfg.seed, epoch, rank, worker, i, 0xC0).permutation(len(part))]
    return rows
