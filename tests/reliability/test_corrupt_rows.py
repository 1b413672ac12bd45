"""Fault 7: corrupt rows in a dataset table, made with raw SQL behind the API's back.

A feature BLOB of the wrong length, a NULL feature, a NULL label, a missing row id: reading through the DataModule
stops with an :class:`InvalidDatasetError` that names the table and the row id (never a silently wrong batch).
"""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from ldm8_backends import server_url

from lightning_dm8 import Database, InvalidDatasetError
from reliability.support import (
    assert_exactly_once,
    check_batch,
    make_dm,
    physical_of,
    train_loader,
    write_labelled,
)

N_ROWS, BAD = 1000, 437


def execute(url: str, *statements: tuple[str, dict]) -> None:
    engine = sa.create_engine(Database(url).sa_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for sql, params in statements:
            conn.execute(sa.text(sql), params)
    engine.dispose()


def allow_null(url: str, backend: str, dataset: str, table: str, column: str) -> None:
    """Drop the NOT NULL constraint of ``column`` of the dataset's ``table`` (SQLite cannot: the table is rebuilt
    without constraints, its view dropped first, as SQLite refuses a rename while a view names a missing table)."""
    if backend == "postgresql":
        execute(url, (f'ALTER TABLE "{table}" ALTER COLUMN {column} DROP NOT NULL', {}))
    elif backend == "mysql":
        kind = "LONGBLOB" if column == "features" else "BIGINT"
        execute(url, (f"ALTER TABLE `{table}` MODIFY {column} {kind} NULL", {}))
    else:
        execute(url, (f'DROP VIEW "{dataset}"', {}), (f'CREATE TABLE "{table}_rebuilt" AS SELECT * FROM "{table}"', {}),
                (f'DROP TABLE "{table}"', {}), (f'ALTER TABLE "{table}_rebuilt" RENAME TO "{table}"', {}),
                (f'CREATE VIEW "{dataset}" AS SELECT * FROM "{table}"', {}))


def corrupt(url: str, backend: str, dataset: str, kind: str) -> str:
    """Damage row ``BAD`` of dataset ``dataset``; returns what the error must say about it."""
    table = physical_of(url, dataset)
    if kind == "short_blob":
        execute(url, (f"UPDATE {table} SET features = :f WHERE row_id = :r", {"f": b"\x01\x02", "r": BAD}))
        return "features hold 2 bytes, expected 12"
    if kind == "null_features":
        allow_null(url, backend, dataset, table, "features")
        execute(url, (f"UPDATE {table} SET features = NULL WHERE row_id = :r", {"r": BAD}))
        return "features are NULL"
    if kind == "null_label":
        allow_null(url, backend, dataset, table, "label")
        execute(url, (f"UPDATE {table} SET label = NULL WHERE row_id = :r", {"r": BAD}))
        return "label is NULL"
    execute(url, (f"DELETE FROM {table} WHERE row_id = :r", {"r": BAD}))
    return "is missing"


def read_epoch(dm) -> int:
    delivered = 0
    for x, _ in dm.train_dataloader():
        delivered += len(x)
    return delivered


@pytest.mark.parametrize("kind", ["short_blob", "null_features", "null_label", "gap"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_corrupt_row_is_reported_with_table_and_row_id(backend, kind, table_name, tmp_path) -> None:
    url = server_url(backend, tmp_path)
    write_labelled(url, table_name, N_ROWS)
    what = corrupt(url, backend, table_name, kind)
    dm = make_dm(url, table_name, tmp_path / "cache", batch_size=50, block_size=100, shuffle=False)
    if kind == "gap":
        # The check the Trainer runs first (prepare_data) already refuses a table whose row ids are not dense.
        with pytest.raises(InvalidDatasetError, match=f"{table_name}.*not dense"):
            dm.prepare_data()
    else:
        dm.prepare_data()
    dm.setup("fit")
    with pytest.raises(InvalidDatasetError) as raised:
        delivered = read_epoch(dm)
        pytest.fail(f"a full epoch of {delivered} rows was delivered from a corrupt table")
    message = str(raised.value)
    assert repr(table_name) in message and f"row_id {BAD}" in message and what in message, message
    dm.teardown("fit")


def test_corrupt_row_error_crosses_the_worker_boundary_and_a_fixed_row_reads_again(tmp_path) -> None:
    # One worker is enough to cross the process boundary; torch takes 5 s per worker to shut down after one raised.
    url = f"sqlite:///{tmp_path / 'fix.db'}"
    features = write_labelled(url, "data", N_ROWS)
    corrupt(url, "sqlite", "data", "short_blob")
    cache = tmp_path / "cache"
    dm = make_dm(url, "data", cache, batch_size=50, block_size=100, num_workers=1)
    dm.prepare_data()
    dm.setup("fit")
    with pytest.raises(InvalidDatasetError, match=f"'data', row_id {BAD}: features hold 2 bytes"):
        read_epoch(dm)
    dm.teardown("fit")

    repair = f"UPDATE {physical_of(url, 'data')} SET features = :f WHERE row_id = :r"
    execute(url, (repair, {"f": features[BAD].tobytes(), "r": BAD}))
    dm = make_dm(url, "data", cache, batch_size=50, block_size=100, num_workers=1)
    loader = train_loader(dm)
    ids = np.concatenate([check_batch(x, y, features) for x, y in loader])
    assert_exactly_once(ids, N_ROWS)  # the corrupt block was never cached: the repaired row is read
    dm.teardown("fit")
