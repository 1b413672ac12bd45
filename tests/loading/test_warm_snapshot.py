"""A warm epoch reads one LMDB snapshot: each block is checked and decoded once, however many windows need its rows;
a block the cache lacks is fetched from the database once per epoch; the snapshot ends with the epoch, also with an
epoch abandoned halfway (no reader is left holding the cache's old pages)."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from reliability.support import assert_exactly_once, check_batch, write_labelled

from lightning_dm8.loading import dataset as dataset_module
from loading.support import make_dm

N_ROWS, BLOCK, MISSING = 600, 64, 4


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """One batch per window, so each block's rows are spread over many windows."""
    monkeypatch.setattr(dataset_module, "_WINDOW_BATCHES", 1)


def _warm(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'data.db'}"
    features = write_labelled(url, "data", N_ROWS)
    dm = make_dm(url, "data", tmp_path / "cache", block_size=BLOCK, batch_size=16, shuffle=True, seed=3)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert_exactly_once(np.concatenate([check_batch(x, y, features) for x, y in loader]), N_ROWS)  # fills the cache
    return dm, loader, features


def test_a_block_missing_from_the_cache_is_read_from_the_database_once_per_epoch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    features = write_labelled(url, "data", N_ROWS)
    dm = make_dm(url, "data", tmp_path / "cache", block_size=BLOCK)
    dm.prepare_data()
    dm.setup("fit")
    dataset = dm.datasets["train"]
    dataset.fill([b for b in range(-(-N_ROWS // BLOCK)) if b != MISSING])
    assert dataset.missing_blocks() == [MISSING]
    source = dataset.source()
    source.stats.take()
    order = np.random.default_rng(0).permutation(N_ROWS)
    for epoch, from_db in enumerate((BLOCK, 0)):  # the block read in the first epoch is cached for the second
        source.start_epoch()
        windows = [source.rows(order[i : i + 16]) for i in range(0, N_ROWS, 16)]  # 38 windows of 16 rows
        for window in windows:
            assert np.array_equal(window.features, features[window.row_ids])
        assert np.array_equal(np.concatenate([w.row_ids for w in windows]), order)
        stats = source.stats.take()
        # The missing block's 64 rows fall in many windows, yet it is queried once.
        assert (stats["queries"], stats["rows_from_db"], stats["rows_from_cache"]) == (
            int(from_db > 0), from_db, N_ROWS - from_db), epoch
        source.end_reading()
        source.flush()
    dm.teardown("fit")


def test_the_snapshot_ends_with_the_epoch_and_with_an_abandoned_one(tmp_path: Path, small_windows: None) -> None:
    dm, loader, features = _warm(tmp_path)
    source = dm.datasets["train"].source()
    batches = iter(loader)
    check_batch(*next(batches), features)
    assert source._epoch_reader is not None  # the warm epoch reads its snapshot
    del batches
    gc.collect()
    assert source._epoch_reader is None and not source._parts
    assert_exactly_once(np.concatenate([check_batch(x, y, features) for x, y in loader]), N_ROWS)
    assert source._epoch_reader is None and not source._parts
    assert dm.epoch_stats["train"].rows_from_cache == N_ROWS
    dm.teardown("fit")
