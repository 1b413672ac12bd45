"""DatasetTable: sized and indexable, and every broken table reported with the table and the row to look at."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sqlalchemy as sa

from lightning_dm8 import (
    Database,
    DatasetTable,
    InvalidDatasetError,
    TableExistsError,
    TableNotFoundError,
    write_arrays,
)
from lightning_dm8.tables import registry
from lightning_dm8.tables.ddl import table_exists
from tables.support import execute, read_all, reflect

ROWS = 10


@pytest.fixture
def written(db: Database, table_name: str) -> tuple[np.ndarray, np.ndarray]:
    """A small dataset ``table_name``: ROWS samples of 3 int32 values (12 bytes), labels 100..109."""
    features = np.arange(ROWS * 3, dtype=np.int32).reshape(ROWS, 3)
    labels = np.arange(100, 100 + ROWS)
    write_arrays(db, table_name, features, labels, progress=False)
    return features, labels


def test_len_items_and_ranges(db: Database, table_name: str, written) -> None:
    features, labels = written
    table = DatasetTable(db, table_name)
    assert len(table) == ROWS
    sample, label = table[-1]
    assert sample.tolist() == features[-1].tolist() and label == 109 and isinstance(label, int)
    block = table.read_range(3, 7)
    assert block.row_ids.tolist() == [3, 4, 5, 6]
    assert block.features.tolist() == features[3:7].tolist() and block.labels.tolist() == labels[3:7].tolist()
    assert len(table.read_range(5, 5)) == 0


@pytest.mark.parametrize("index", [ROWS, -ROWS - 1])
def test_item_out_of_range(db: Database, table_name: str, written, index: int) -> None:
    with pytest.raises(IndexError, match=rf"row {index} is out of range for dataset '{table_name}' of {ROWS} rows"):
        DatasetTable(db, table_name)[index]


@pytest.mark.parametrize(("lo", "hi"), [(-1, 3), (4, 2), (0, ROWS + 1)])
def test_range_out_of_bounds(db: Database, table_name: str, written, lo: int, hi: int) -> None:
    with pytest.raises(IndexError, match=rf"range \[{lo}, {hi}\) is out of bounds for dataset '{table_name}'"):
        DatasetTable(db, table_name).read_range(lo, hi)


def test_repr_masks_the_password_and_nothing_connects(table_name: str) -> None:
    table = DatasetTable("postgresql://postgres:pw-not-shown@127.0.0.1:5432/test", table_name)
    assert repr(table) == f"DatasetTable('postgresql+psycopg://postgres:***@127.0.0.1:5432/test', '{table_name}')"
    assert table.db._engine.peek() is None  # nothing connects until the first call


def test_unknown_table(db: Database) -> None:
    with pytest.raises(TableNotFoundError,
                       match=r"dataset table 'nope' does not exist in .*lightning-dm8 ls --url URL"):
        DatasetTable(db, "nope").info()
    with pytest.raises(TableNotFoundError, match="'nope' does not exist"):
        len(DatasetTable(db, "nope"))


def test_table_that_is_not_registered(db: Database, table_name: str) -> None:
    with db.begin() as conn:
        sa.Table(table_name, sa.MetaData(), sa.Column("row_id", sa.Integer, primary_key=True)).create(conn)
    with pytest.raises(InvalidDatasetError, match=rf"table '{table_name}' in .* is not a dataset table "
                                                  r"\(it has no entry in ldm8_datasets\)"):
        DatasetTable(db, table_name).info()


def test_registered_table_dropped_behind_our_back(db: Database, table_name: str, written) -> None:
    with db.begin() as conn:
        db.backend.drop_view(conn, table_name)
        reflect(db, table_name).drop(conn)
    with pytest.raises(TableNotFoundError, match=rf"read rows 0\.\.9 of '{table_name}'"):
        DatasetTable(db, table_name).read_range(0, ROWS)


def test_row_ids_not_dense(db: Database, table_name: str, written) -> None:
    raw = reflect(db, table_name)
    execute(db, raw.delete().where(raw.c.row_id == 3))
    table = DatasetTable(db, table_name)
    with pytest.raises(InvalidDatasetError, match=rf"dataset table '{table_name}': row ids are not dense 0\.\.9 as "
                                                  r"registered \(10 rows\); found 9 rows with row_id from 0 to 9"):
        table.validate()
    with pytest.raises(InvalidDatasetError, match=rf"table '{table_name}': row_id 3 is missing \(rows 0\.\.9 "
                                                  r"returned 9 of 10\)"):
        table.read_range(0, ROWS)
    assert len(table.read_range(4, ROWS)) == 6  # the rows after the gap still read


def test_extra_row_fails_validation(db: Database, table_name: str, written) -> None:
    raw = reflect(db, table_name)
    execute(db, raw.insert().values(row_id=ROWS, features=b"\x00" * 12, label=1))
    with pytest.raises(InvalidDatasetError, match=r"found 11 rows with row_id from 0 to 10"):
        DatasetTable(db, table_name).validate()


def make_nullable(db: Database, name: str) -> sa.Table:
    """Rebuild dataset table ``name`` with nullable columns (same rows), so that a test can store NULLs in it."""
    raw = reflect(db, name)
    with db.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(raw))]
        db.backend.drop_view(conn, name)  # the dataset's view depends on the table (PostgreSQL)
        raw.drop(conn)
        columns = [sa.Column(c.name, c.type, primary_key=c.primary_key, autoincrement=False) for c in raw.columns]
        loose = sa.Table(raw.name, sa.MetaData(), *columns)
        loose.create(conn)
        conn.execute(loose.insert(), rows)
    return loose


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("label", None, "the label is NULL; fix or delete that row"),
        ("features", None, "the features are NULL; fix or delete that row"),
        ("features", b"\x01\x02\x03\x04\x05", r"features hold 5 bytes, expected 12 \(<i4 \(3,\)\); the row is corrupt"),
        ("features", b"", r"features hold 0 bytes, expected 12"),
    ],
    ids=["null-label", "null-features", "short-blob", "empty-blob"],
)
def test_bad_row_is_named(db: Database, table_name: str, written, column: str, value, message: str) -> None:
    raw = make_nullable(db, table_name)
    execute(db, raw.update().where(raw.c.row_id == 6).values({column: value}))
    table = DatasetTable(db, table_name)
    with pytest.raises(InvalidDatasetError, match=rf"table '{table_name}', row_id 6: {message}"):
        table.read_range(0, ROWS)
    with pytest.raises(InvalidDatasetError, match=rf"row_id 6: {message}"):
        table[6]
    assert table[5][1] == 105  # the other rows still read


def test_varlen_blob_not_a_whole_number_of_items(db: Database, table_name: str) -> None:
    write_arrays(db, table_name, [np.arange(n, dtype=np.int64) for n in range(5)], None, progress=False)
    raw = reflect(db, table_name)
    execute(db, raw.update().where(raw.c.row_id == 2).values(features=b"\x00" * 12))
    with pytest.raises(InvalidDatasetError, match=rf"table '{table_name}', row_id 2: 12 bytes is not a whole number "
                                                  r"of <i8 items"):
        DatasetTable(db, table_name).read_range(0, 5)


def test_drop_removes_table_and_registry_entry(db: Database, table_name: str, written) -> None:
    DatasetTable(db, table_name).drop()
    with db.connect() as conn:
        assert not table_exists(conn, table_name)
        assert registry.read_info(conn, table_name) is None
    with pytest.raises(TableNotFoundError):
        DatasetTable(db, table_name).info()


def test_names_differing_in_case_are_different_datasets(db: Database, table_name: str) -> None:
    lower, upper = f"{table_name}_cats", f"{table_name}_CATS"
    write_arrays(db, lower, np.zeros((2, 2), np.uint8), [0, 0], progress=False)
    if db.backend.name == "sqlite":  # SQLite table names are case-insensitive: the second name is the same table
        with pytest.raises(TableExistsError, match="exists but is not a dataset"):
            write_arrays(db, upper, np.ones((3, 2), np.uint8), [1, 1, 1], progress=False)
        return
    write_arrays(db, upper, np.ones((3, 2), np.uint8), [1, 1, 1], progress=False)
    assert DatasetTable(db, lower)[0][1] == 0 and len(DatasetTable(db, lower)) == 2
    assert DatasetTable(db, upper)[0][1] == 1 and len(DatasetTable(db, upper)) == 3
    DatasetTable(db, upper).drop()
    assert DatasetTable(db, lower).validate().row_count == 2


@pytest.mark.parametrize(
    "suffix",
    [' 数据 "x"; DROP TABLE {sentinel} --', "`; DELETE FROM ldm8_datasets; '--", " O'Brien [x] %s ?"],
    ids=["quotes-chinese", "backtick", "placeholders"],
)
def test_hostile_names_round_trip(db: Database, table_name: str, suffix: str) -> None:
    sentinel = f"{table_name}_y"
    write_arrays(db, sentinel, np.zeros((1, 1)), [0], progress=False)
    name = table_name + suffix.format(sentinel=sentinel)
    features = np.arange(12, dtype=np.uint8).reshape(4, 3)
    info = write_arrays(db, name, features, [1, 2, 3, 4], progress=False)
    assert info.name == name
    table = DatasetTable(db, name)
    assert table.validate().fingerprint == info.fingerprint
    assert read_all(table)[0].tolist() == features.tolist()
    with db.connect() as conn:
        assert [i.name for i in registry.list_infos(conn) if i.name.startswith(table_name)] == sorted([name, sentinel])
    assert DatasetTable(db, sentinel).validate().row_count == 1
    table.drop()
    assert DatasetTable(db, sentinel).validate().row_count == 1


def test_pickled_table_reads_in_a_fresh_state(db: Database, table_name: str, written) -> None:
    features, _ = written
    table = DatasetTable(db, table_name)
    table[0]
    clone = pickle.loads(pickle.dumps(table))
    assert clone.db._engine.peek() is None
    assert clone.read_range(0, ROWS).features.tolist() == features.tolist()
