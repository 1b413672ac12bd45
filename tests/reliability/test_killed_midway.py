"""Fault 3: a process SIGKILLed while it writes a dataset table or fills the LMDB cache.

A killed writer leaves no table under the dataset's name and no registry entry, and the next write succeeds. A
killed cache filler leaves whole blocks only: the next run sees the cache is partial, fills the rest, and serves
every row equal to the source.
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
import sqlalchemy as sa
from ldm8_backends import server_url

from lightning_dm8 import (
    Database,
    DatasetTable,
    TableNotFoundError,
    write_arrays,
    write_dataset,
)
from lightning_dm8.loading.cache import BlockCache, cache_path
from lightning_dm8.tables import registry
from reliability.support import (
    assert_exactly_once,
    check_batch,
    fork,
    kill9,
    make_dm,
    train_loader,
    wait_for,
    write_labelled,
)


class _Stalling:
    """10**7 samples; at sample 30000 (one full insert batch of 20000 rows is then in the staging table) it signals
    and stops making progress, so the writer is killed mid-write."""

    def __init__(self, signal_path, staging: list[str]) -> None:
        self.signal_path, self.staging = signal_path, staging

    def __len__(self) -> int:
        return 10**7

    def __getitem__(self, i: int):
        if i == 30000:
            tmp = self.signal_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"staging": self.staging}))
            tmp.rename(self.signal_path)
            time.sleep(600)
        return np.full(4, i, dtype=np.float32), i


def _write_forever(url: str, name: str, signal_path) -> None:
    db = Database(url)
    staging: list[str] = []

    @sa.event.listens_for(db.engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement, *_args) -> None:
        # The table the rows go into before anything points at them: a staging table or a new version's table.
        found = re.search(r"CREATE TABLE\s+\W?(ldm8_(?:tmp|d)_[0-9a-z_]+)", statement)
        if found:
            staging.append(found.group(1))

    write_dataset(db, name, _Stalling(signal_path, staging), progress=False)


def _staging_rows(db: Database, staging: str) -> int | None:
    with db.connect("test") as conn:
        if not sa.inspect(conn).has_table(staging):
            return None
        table = sa.Table(staging, sa.MetaData(), sa.Column("row_id"))
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_writer_killed_mid_write_leaves_no_dataset_and_the_next_write_succeeds(backend, table_name, tmp_path) -> None:
    url = server_url(backend, tmp_path)
    signal_path = tmp_path / "mid-write.json"
    proc = fork(_write_forever, url, table_name, signal_path)
    staging: list[str] = []
    db = Database(url)
    try:
        wait_for(signal_path.exists, 60, "the writer to be mid-write", proc)
        staging = json.loads(signal_path.read_text())["staging"]
        assert len(staging) == 1 and _staging_rows(db, staging[0]) is not None, "no staging table while writing"
        kill9(proc)

        with db.connect("test") as conn:
            assert not sa.inspect(conn).has_table(table_name), "a table was published under the dataset's name"
            assert registry.read_info(conn, table_name) is None, "a registry entry was left for the killed write"
        with pytest.raises(TableNotFoundError):
            DatasetTable(db, table_name).info()
        # The staging table itself stays behind (its CREATE was committed), but empty: the rows were never committed.
        left = _staging_rows(db, staging[0])
        print(f"\n{backend}: writer killed mid-write; staging table {staging[0]} left with {left} rows")
        assert left in (None, 0)

        features = np.arange(500 * 4, dtype=np.float32).reshape(500, 4)
        info = write_arrays(db, table_name, features, np.arange(500), progress=False)
        assert info.row_count == 500
        block = DatasetTable(db, table_name).read_range(0, 500)
        np.testing.assert_array_equal(block.features, features)
        np.testing.assert_array_equal(block.labels, np.arange(500))
    finally:
        if proc.is_alive():
            kill9(proc)
        for name in staging:
            with db.begin("test cleanup") as conn:
                sa.Table(name, sa.MetaData()).drop(conn, checkfirst=True)
        db.dispose()


def _fill_cache(url: str, cache_dir: str, progress) -> None:
    dm = make_dm(url, "data", cache_dir, batch_size=50, block_size=100, shuffle=True, seed=1, prefetch_blocks=4)
    loader = train_loader(dm)
    progress.send(("complete at start", dm.cache_complete["train"]))
    for i, _ in enumerate(loader):
        progress.send(("batch", i))
        time.sleep(0.01)
    progress.send(("finished", None))


def test_cache_filler_killed_mid_epoch_is_completed_by_the_next_run(tmp_path) -> None:
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'c.db'}"
    n_rows, block_size = 20000, 100
    n_blocks = math.ceil(n_rows / block_size)
    features = write_labelled(url, "data", n_rows)
    cache_dir = tmp_path / "cache"
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    proc = fork(_fill_cache, url, str(cache_dir), sender)
    try:
        assert receiver.poll(60) and receiver.recv() == ("complete at start", False)
        while True:
            assert receiver.poll(60), "the cache filler stopped reporting"
            event = receiver.recv()
            assert event[0] == "batch", f"the filler finished before it was killed: {event}"
            if event[1] == 60:
                break
        kill9(proc)  # while its prefetch threads are writing blocks into the cache
    finally:
        if proc.is_alive():
            kill9(proc)

    info = DatasetTable(url, "data").info()
    path = cache_path(cache_dir, Database(url), "data")
    probe = BlockCache(path, info.fingerprint, block_size, n_blocks)
    partial = probe.cached_blocks()
    probe.close()
    assert 0 < partial < n_blocks, f"expected a partial cache, found {partial} of {n_blocks} blocks"

    dm = make_dm(url, "data", cache_dir, batch_size=50, block_size=block_size, shuffle=True, seed=2)
    loader = train_loader(dm)
    assert dm.cache_complete["train"] is False, "a partial cache was taken for a complete one"
    ids = np.concatenate([check_batch(x, y, features) for x, y in loader])
    assert_exactly_once(ids, n_rows)
    cold = dm.epoch_stats["train"]
    assert cold.rows_from_cache > 0 and cold.queries == n_blocks - partial, (
        f"expected {n_blocks - partial} queries for the missing blocks; stats {cold.as_dict()}")

    ids = np.concatenate([check_batch(x, y, features) for x, y in loader])
    assert_exactly_once(ids, n_rows)
    warm = dm.epoch_stats["train"]
    assert warm.queries == 0 and warm.rows_from_cache >= n_rows
    print(f"\nfiller killed after {partial}/{n_blocks} blocks cached; next run: {cold.queries} queries for the rest, "
          f"{cold.rows_from_cache} rows from the partial cache; warm epoch: 0 queries")
    dm.teardown("fit")
