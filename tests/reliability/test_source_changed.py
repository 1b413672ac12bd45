"""Fault 4: the dataset table changes between runs that share a cache_dir.

Changes made through the API (``if_exists="append"`` / ``"replace"``) change the registered fingerprint, so the
stale cache is emptied and never served. A change made behind the API's back (a direct SQL ``UPDATE``) leaves the
fingerprint as it was: the cache cannot see it, and the test below pins down exactly what is served then.
"""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from ldm8_backends import server_url

import lightning_dm8
from lightning_dm8 import DatasetTable
from reliability.support import (
    assert_exactly_once,
    check_batch,
    make_dm,
    train_loader,
    write_labelled,
)

N_ROWS = 1003  # the last block (64 rows each) is partial: an append changes it


def run_epochs(url: str, table: str, cache_dir, expected: np.ndarray, epochs: int = 2) -> list[dict]:
    """A fresh run (new DataModule) of ``epochs`` epochs; every row is checked against ``expected``."""
    dm = make_dm(url, table, cache_dir, seed=4)
    loader = train_loader(dm)
    stats = []
    for _ in range(epochs):
        ids = np.concatenate([check_batch(x, y, expected) for x, y in loader])
        assert_exactly_once(ids, len(expected))
        stats.append(dm.epoch_stats["train"].as_dict())
    dm.teardown("fit")
    return stats


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_append_and_replace_between_runs_never_serve_the_stale_cache(backend, table_name, tmp_path) -> None:
    url = server_url(backend, tmp_path)
    cache = tmp_path / "cache"
    original = write_labelled(url, table_name, N_ROWS, seed=0)
    first = run_epochs(url, table_name, cache, original)
    assert first[1]["queries"] == 0, "the first run's second epoch should come from the cache"

    appended = write_labelled(url, table_name, 200, seed=0, if_exists="append", start=N_ROWS)
    both = np.concatenate([original, appended])
    after_append = run_epochs(url, table_name, cache, both)  # every served row checked against `both`
    block_size = make_dm(url, table_name).block_size
    # An append keeps every full block of the cache: only the old last (partial) block and the new rows are read.
    assert after_append[0]["rows_from_db"] == N_ROWS % block_size + 200, after_append[0]
    assert after_append[1]["queries"] == 0

    replaced = write_labelled(url, table_name, N_ROWS, seed=7, if_exists="replace")
    assert not np.array_equal(replaced, original)
    after_replace = run_epochs(url, table_name, cache, replaced)
    assert after_replace[0]["rows_from_cache"] == 0, "rows of the replaced table were served from the cache"
    assert after_replace[1]["queries"] == 0


def test_out_of_band_update_is_served_stale_from_a_complete_cache(tmp_path) -> None:
    """Known limitation, documented: an ``UPDATE`` made directly in SQL does not change the registered fingerprint,
    so a run with a complete cache keeps serving the old value. A run without a cache sees the new value; writing
    the table again through the API (or deleting cache_dir) is what refreshes the cache. (The fingerprint is of the
    content: rewriting identical rows keeps a cache valid, which is correct.)"""
    url = f"sqlite:///{tmp_path / 'oob.db'}"
    cache = tmp_path / "cache"
    original = write_labelled(url, "data", N_ROWS)
    run_epochs(url, "data", cache, original, epochs=1)

    changed = original.copy()
    changed[5] = [-1.0, -2.0, -3.0]
    info = DatasetTable(url, "data").info()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {info.table_name} SET features = :f WHERE row_id = 5"),
                     {"f": changed[5].tobytes()})
    engine.dispose()
    assert DatasetTable(url, "data").info(refresh=True).fingerprint == info.fingerprint

    stale = run_epochs(url, "data", cache, original, epochs=1)  # row 5 comes back with its OLD value
    assert stale[0]["queries"] == 0 and stale[0]["rows_from_cache"] >= N_ROWS
    run_epochs(url, "data", None, changed, epochs=1)  # without the cache the new value is read

    # Written again through the API with the changed row: a new content fingerprint, so the cache is refilled.
    lightning_dm8.write_arrays(url, "data", changed, np.arange(N_ROWS), if_exists="replace", progress=False)
    fresh = run_epochs(url, "data", cache, changed, epochs=2)
    assert fresh[0]["rows_from_cache"] == 0 and fresh[1]["queries"] == 0
