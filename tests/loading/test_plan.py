"""Epoch plans without a database: exactly-once coverage, equal batch counts, determinism, shuffle quality."""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest

from lightning_dm8.loading.dataset import round_robin_share
from lightning_dm8.loading.plan import (
    PlanConfig,
    batches_per_rank,
    padding_rows,
    row_dtype,
    rows_per_rank,
    worker_batch_range,
    worker_order,
)
from loading.support import spearman

COMBOS = [
    PlanConfig(n_rows=n, block_size=block, batch_size=batch, world_size=world, num_workers=workers,
               seed=7, shuffle=shuffle, drop_last=drop_last, buffer_blocks=3)
    for n, world, workers, batch, block in [
        (1, 1, 1, 4, 8), (7, 3, 2, 2, 3), (100, 1, 1, 10, 16), (1003, 2, 3, 32, 64), (1001, 4, 2, 7, 50),
        (513, 3, 4, 16, 16), (64, 2, 5, 8, 8), (10, 4, 1, 3, 2), (2000, 8, 3, 1, 100),
    ]
    for shuffle, drop_last in itertools.product((False, True), (False, True))
]


def _ids(cfg: PlanConfig) -> str:
    return (f"n{cfg.n_rows}-w{cfg.world_size}-k{cfg.num_workers}-b{cfg.batch_size}-blk{cfg.block_size}"
            f"-{'shuf' if cfg.shuffle else 'seq'}{'-drop' if cfg.drop_last else ''}")


def rank_orders(cfg: PlanConfig, epoch: int, mode: str) -> list[list[np.ndarray]]:
    """``orders[rank][worker]``: every row id each worker of each rank delivers."""
    return [[worker_order(cfg, epoch, r, w, mode) for w in range(cfg.num_workers)] for r in range(cfg.world_size)]


def batch_count(rows: np.ndarray, batch_size: int) -> int:
    return math.ceil(len(rows) / batch_size)


@pytest.mark.parametrize("mode", ["cold", "warm"])
@pytest.mark.parametrize("cfg", COMBOS, ids=_ids)
def test_every_row_once_plus_documented_padding(cfg: PlanConfig, mode: str) -> None:
    delivered = np.concatenate([o for orders in rank_orders(cfg, 3, mode) for o in orders])
    counts = np.bincount(delivered, minlength=cfg.n_rows)
    assert len(counts) == cfg.n_rows, "a row id outside 0..n-1 was delivered"
    if cfg.drop_last:
        assert padding_rows(cfg) == 0
        assert counts.max(initial=0) <= 1
        dropped = cfg.n_rows - len(delivered)
        assert 0 <= dropped < cfg.world_size * cfg.batch_size + cfg.world_size
    else:
        assert counts.min() >= 1, "a row was never delivered"
        assert int((counts - 1).sum()) == padding_rows(cfg)
        assert counts.max() <= 2
        assert 0 <= padding_rows(cfg) < cfg.world_size


@pytest.mark.parametrize("mode", ["cold", "warm"])
@pytest.mark.parametrize("cfg", COMBOS, ids=_ids)
def test_every_rank_yields_the_same_number_of_batches(cfg: PlanConfig, mode: str) -> None:
    for orders in rank_orders(cfg, 1, mode):
        assert sum(len(o) for o in orders) == rows_per_rank(cfg)
        # Only the rank's very last batch may be short, so per-worker counts add up to the rank's count.
        assert sum(batch_count(o, cfg.batch_size) for o in orders) == batches_per_rank(cfg)
        assert all(len(o) % cfg.batch_size == 0 for o in orders[:-1])


@pytest.mark.parametrize("cfg", COMBOS, ids=_ids)
def test_workers_own_contiguous_batches_of_the_rank_share(cfg: PlanConfig) -> None:
    for rank, orders in enumerate(rank_orders(cfg, 0, "cold")):
        ranges = [worker_batch_range(cfg, w) for w in range(cfg.num_workers)]
        assert ranges[0][0] == 0 and ranges[-1][1] == batches_per_rank(cfg)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges)), "worker batch ranges must tile the rank"
        sizes = [hi - lo for lo, hi in ranges]
        assert max(sizes) - min(sizes) <= 1
        rank_rows = np.concatenate(orders)
        for (lo, hi), rows in zip(ranges, orders, strict=True):
            expected = rank_rows[lo * cfg.batch_size : hi * cfg.batch_size]
            assert sorted(rows.tolist()) == sorted(expected.tolist())
        if not cfg.shuffle:
            start = rank * rows_per_rank(cfg)
            expected_ids = np.arange(start, start + rows_per_rank(cfg)) % cfg.n_rows
            np.testing.assert_array_equal(rank_rows, expected_ids)


@pytest.mark.parametrize("mode", ["cold", "warm"])
def test_orders_are_a_function_of_seed_and_epoch(mode: str) -> None:
    cfg = PlanConfig(n_rows=5000, block_size=32, batch_size=16, world_size=2, num_workers=2, shuffle=True, seed=3)
    other_seed = PlanConfig(**{**cfg.__dict__, "seed": 4})
    first = rank_orders(cfg, 2, mode)
    for again, same in ((rank_orders(cfg, 2, mode), True), (rank_orders(cfg, 3, mode), False),
                        (rank_orders(other_seed, 2, mode), False)):
        equal = all(np.array_equal(a, b)
                    for ra, rb in zip(first, again, strict=True) for a, b in zip(ra, rb, strict=True))
        assert equal is same


def test_cold_mode_keeps_block_locality() -> None:
    cfg = PlanConfig(n_rows=20_000, block_size=50, batch_size=32, world_size=2, num_workers=3, shuffle=True,
                     seed=11, buffer_blocks=4)
    window = cfg.buffer_blocks * cfg.block_size
    for orders in rank_orders(cfg, 0, "cold"):
        for rows in orders:
            for start in range(0, len(rows), window):
                blocks = np.unique(rows[start : start + window] // cfg.block_size)
                assert len(blocks) <= cfg.buffer_blocks + 2


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_warm_mode_is_a_full_permutation(seed: int) -> None:
    cfg = PlanConfig(n_rows=20_000, block_size=64, batch_size=32, shuffle=True, seed=seed)
    order = worker_order(cfg, 0, 0, 0, "warm")
    assert sorted(order.tolist()) == list(range(cfg.n_rows))
    assert abs(spearman(order)) < 0.05
    # Not block-local: consecutive rows rarely share a block.
    assert np.mean(order[1:] // 64 == order[:-1] // 64) < 0.05


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cold_first_epoch_is_measurably_shuffled(seed: int) -> None:
    cfg = PlanConfig(n_rows=20_000, block_size=16, batch_size=32, world_size=2, num_workers=2, shuffle=True,
                     seed=seed)
    for orders in rank_orders(cfg, 0, "cold"):
        rank_rows = np.concatenate(orders)
        assert abs(spearman(rank_rows)) < 0.1
        # Rows are also mixed inside the read window, not served block after block in row id order.
        assert np.mean(np.diff(rank_rows) == 1) < 0.1


def test_unshuffled_orders_ignore_seed_and_epoch() -> None:
    cfg = PlanConfig(n_rows=300, block_size=16, batch_size=8, world_size=3, num_workers=2, seed=1)
    cold, warm = (np.concatenate(rank_orders(cfg, epoch, mode)[1]) for epoch, mode in ((0, "cold"), (5, "warm")))
    assert np.array_equal(cold, warm)


def test_padding_repeats_the_first_rows_of_the_epoch() -> None:
    cfg = PlanConfig(n_rows=1001, block_size=64, batch_size=32, world_size=4, num_workers=1)
    assert rows_per_rank(cfg) == 251 and padding_rows(cfg) == 3 and batches_per_rank(cfg) == 8
    last_rank = worker_order(cfg, 0, 3, 0, "cold")
    np.testing.assert_array_equal(last_rank[-3:], [0, 1, 2])


def test_drop_last_gives_whole_batches_only() -> None:
    cfg = PlanConfig(n_rows=1003, block_size=64, batch_size=32, world_size=2, num_workers=3, drop_last=True)
    assert rows_per_rank(cfg) == 480 and batches_per_rank(cfg) == 15 and padding_rows(cfg) == 0


def _reference_order(cfg: PlanConfig, epoch: int, rank: int, worker: int, mode: str) -> np.ndarray:
    """The plan as first written: the whole global sequence as int64, padded, then sliced. Kept to prove that
    building only the worker's slice, in a smaller dtype, gives exactly the same orders."""
    n = cfg.n_rows
    rng = np.random.default_rng([abs(int(k)) for k in (cfg.seed, epoch, 0x5EED)])
    if not cfg.shuffle:
        sequence = np.arange(n, dtype=np.int64)
    elif mode == "warm":
        sequence = rng.permutation(n).astype(np.int64)
    else:
        starts = rng.permutation(math.ceil(n / cfg.block_size)).astype(np.int64) * cfg.block_size
        lengths = np.minimum(starts + cfg.block_size, n) - starts
        sequence = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(n)
    share, padding = rows_per_rank(cfg), padding_rows(cfg)
    if padding:
        sequence = np.concatenate([sequence, sequence[:padding]])
    first, last = worker_batch_range(cfg, worker)
    rows = sequence[rank * share : (rank + 1) * share][first * cfg.batch_size : last * cfg.batch_size].copy()
    if cfg.shuffle and mode == "cold":
        window = max(1, cfg.buffer_blocks) * cfg.block_size
        for i, start in enumerate(range(0, len(rows), window)):
            part = rows[start : start + window]
            key = [abs(int(k)) for k in (cfg.seed, epoch, rank, worker, i, 0xC0)]
            rows[start : start + window] = part[np.random.default_rng(key).permutation(len(part))]
    return rows


EDGE_COMBOS = [  # padding longer than the table, single-row blocks, blocks larger than the table
    PlanConfig(n_rows=n, block_size=block, batch_size=batch, world_size=world, num_workers=workers, seed=5,
               shuffle=shuffle, drop_last=drop_last, buffer_blocks=buffer)
    for n, world, workers, batch, block, buffer in [
        (1, 4, 2, 3, 2, 1), (2, 8, 3, 1, 1, 2), (3, 8, 1, 2, 5, 1), (4097, 1, 4, 128, 256, 8),
        (12345, 5, 2, 64, 1000, 1),
    ]
    for shuffle, drop_last in itertools.product((False, True), (False, True))
]


@pytest.mark.parametrize("mode", ["cold", "warm"])
@pytest.mark.parametrize("cfg", COMBOS + EDGE_COMBOS, ids=_ids)
def test_orders_are_those_of_the_reference_plan(cfg: PlanConfig, mode: str) -> None:
    for epoch, rank, worker in itertools.product((0, 3), range(cfg.world_size), range(cfg.num_workers)):
        order = worker_order(cfg, epoch, rank, worker, mode)
        assert order.dtype == np.int32
        np.testing.assert_array_equal(order, _reference_order(cfg, epoch, rank, worker, mode))


@pytest.mark.parametrize("mode", ["cold", "warm"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_a_worker_plan_holds_its_share_not_the_table(mode: str, shuffle: bool) -> None:
    cfg = PlanConfig(n_rows=1_000_000, block_size=256, batch_size=128, num_workers=8, seed=1, shuffle=shuffle)
    first, last = worker_batch_range(cfg, 5)
    share_bytes = 4 * (last - first) * cfg.batch_size
    tracemalloc.start()
    try:
        order = worker_order(cfg, 1, 0, 5, mode)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert order.nbytes == share_bytes
    # A warm epoch's full permutation is the one table-sized array (int32); everything else is O(share + blocks).
    table_bytes = 4 * cfg.n_rows if shuffle and mode == "warm" else 0
    assert peak < table_bytes + 3 * share_bytes + 128 * math.ceil(cfg.n_rows / cfg.block_size)


def test_row_ids_past_int32_are_int64() -> None:
    n = 2**31 + 1000
    cfg = PlanConfig(n_rows=n, block_size=4096, batch_size=64, world_size=2**20, num_workers=1)
    assert row_dtype(cfg) == np.int64
    assert row_dtype(PlanConfig(n_rows=10, block_size=2**31, batch_size=1)) == np.int64
    share = rows_per_rank(cfg)
    rank = n // share  # its share runs past the last row into the padding (the first rows again)
    order = worker_order(cfg, 0, rank, 0, "cold")
    assert order.dtype == np.int64
    np.testing.assert_array_equal(order, np.arange(rank * share, (rank + 1) * share) % n)
    # Shuffled (a cold plan is cheap to build here; a warm one would permute all 2**31 rows).
    order = worker_order(PlanConfig(**{**cfg.__dict__, "shuffle": True}), 0, rank, 0, "cold")
    assert order.dtype == np.int64 and len(order) == share and len(np.unique(order)) == share
    assert order.min() >= 0 and order.max() < n


@pytest.mark.parametrize("counts, delivered, expected", [
    ([3, 3, 4], 0, [0, 0, 0]),
    ([3, 3, 4], 4, [2, 1, 1]),
    ([3, 3, 4], 9, [3, 3, 3]),
    ([3, 3, 4], 10, [3, 3, 4]),
    ([1, 2, 2], 4, [1, 2, 1]),
    ([0, 1], 1, [0, 1]),
    ([2, 2], 99, [2, 2]),
])
def test_round_robin_share(counts: list[int], delivered: int, expected: list[int]) -> None:
    assert round_robin_share(counts, delivered) == expected
