"""Shuffle through the real loader: the first (cold, block-local) epoch is already well mixed, later epochs and other
seeds give other orders, and the same (seed, epoch) gives the same order in fresh loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loading.support import (
    assert_exactly_once,
    epoch_ids,
    make_dm,
    spearman,
    write_labelled,
)

N_ROWS = 6000


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('shuffle') / 'rows.db'}"
    write_labelled(url, "rows", N_ROWS)
    return url


def epochs(url: str, cache_dir: Path | None, seed: int, count: int, num_workers: int = 0) -> list[np.ndarray]:
    dm = make_dm(url, "rows", cache_dir, seed=seed, block_size=8, batch_size=64, num_workers=num_workers)
    dm.setup("fit")
    loader = dm.train_dataloader()
    orders = [epoch_ids(loader) for _ in range(count)]
    dm.teardown("fit")
    return orders


@pytest.mark.parametrize("num_workers", [0, 2])
def test_orders_are_shuffled_and_reproducible(table: str, tmp_path: Path, num_workers: int) -> None:
    cold, warm = epochs(table, tmp_path / "cache", seed=1, count=2, num_workers=num_workers)
    for order in (cold, warm):
        assert_exactly_once(order, N_ROWS)
        assert abs(spearman(order)) < 0.1
    assert np.mean(np.diff(cold) == 1) < 0.2, "the cold epoch serves rows block after block in id order"
    assert not np.array_equal(cold, warm)

    # Same (seed, epoch) in fresh loaders: the same orders, whether the cache is fresh, complete, or absent.
    assert all(np.array_equal(a, b) for a, b in zip(epochs(table, tmp_path / "fresh", 1, 2, num_workers), (cold, warm),
                                                         strict=True))
    assert np.array_equal(epochs(table, None, 1, 1, num_workers)[0], cold)
    assert not np.array_equal(epochs(table, None, 2, 1, num_workers)[0], cold)


def test_a_complete_cache_makes_the_first_epoch_a_full_permutation(table: str, tmp_path: Path) -> None:
    cold, _ = epochs(table, tmp_path / "cache", seed=3, count=2)
    warm_first = epochs(table, tmp_path / "cache", seed=3, count=1)[0]
    assert_exactly_once(warm_first, N_ROWS)
    assert not np.array_equal(warm_first, cold)
    same_block = np.mean(warm_first[1:] // 8 == warm_first[:-1] // 8)
    assert same_block < 0.01 < np.mean(cold[1:] // 8 == cold[:-1] // 8)
