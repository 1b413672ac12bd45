"""Exactly once through the real DataLoader on every backend: workers 0/1/3, shuffle on/off, cache on/off."""

from __future__ import annotations

import numpy as np
import pytest

from loading.support import assert_exactly_once, epoch_batches, make_dm, write_labelled

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")

N_ROWS = 1003  # not a multiple of the batch (32) nor of the block (64)


def run_epoch(loader, features: np.ndarray) -> np.ndarray:
    """One epoch: every batch's features equal the written rows of its row ids; returns the row ids in order."""
    ids = []
    for x, y in epoch_batches(loader):
        row_ids = loader.pop_row_ids()
        np.testing.assert_array_equal(y, row_ids)
        np.testing.assert_array_equal(x, features[row_ids])
        ids.append(row_ids)
    with pytest.raises(RuntimeError, match="no batch row ids"):
        loader.pop_row_ids()
    return np.concatenate(ids)


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "nocache"])
@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffle", "ordered"])
@pytest.mark.parametrize("num_workers", [0, 1, 3])
def test_every_row_exactly_once_per_epoch(db_url, table_name, tmp_path, num_workers, shuffle, cached) -> None:
    features = write_labelled(db_url, table_name, N_ROWS)
    dm = make_dm(db_url, table_name, tmp_path / "cache" if cached else None, num_workers=num_workers,
                 shuffle=shuffle, seed=5)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.track_row_ids = True
    assert len(loader) == 32

    first = run_epoch(loader, features)
    assert_exactly_once(first, N_ROWS)
    cold = dm.epoch_stats["train"]
    assert cold.queries >= 16 and cold.rows_from_db >= N_ROWS

    second = run_epoch(loader, features)
    assert_exactly_once(second, N_ROWS)
    warm = dm.epoch_stats["train"]
    if cached:
        # Workers whose shares meet inside a block both read that block, so the count can exceed the rows.
        assert (warm.queries, warm.rows_from_db) == (0, 0) and warm.rows_from_cache >= N_ROWS
    else:
        assert warm.queries >= 16 and warm.rows_from_db >= N_ROWS and warm.rows_from_cache == 0
    assert (not np.array_equal(first, second)) is shuffle
    if not shuffle and num_workers <= 1:
        np.testing.assert_array_equal(first, np.arange(N_ROWS))
    if not shuffle:
        # Workers own contiguous row ranges (sequential reads); the DataLoader interleaves their batches.
        batches = np.split(first, np.arange(32, N_ROWS, 32))
        assert all(np.array_equal(b, np.arange(b[0], b[0] + len(b))) for b in batches)
    dm.teardown("fit")
