"""Table definitions: column types per backend, names every backend can hold, the registry's exact names."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateTable

from lightning_dm8 import Database, write_arrays
from lightning_dm8.db.schema import (
    DM_VARBINARY_LIMIT,
    binary_type,
    dataset_table,
    feature_columns,
    name_problem,
    postgres_storage,
    registry_table,
)
from lightning_dm8.tables.codecs import FeatureCodec


@pytest.mark.parametrize(
    ("backend", "name", "problem"),
    [
        ("postgresql", "x" * 63, None),
        ("postgresql", "x" * 64, "PostgreSQL names hold at most 63 bytes of UTF-8; it has 64"),
        ("postgresql", "数" * 21, None),
        ("postgresql", "数" * 22, "at most 63 bytes of UTF-8; it has 66"),
        ("mysql", "数" * 64, None),
        ("mysql", "x" * 65, "MySQL/MariaDB names hold at most 64 characters; it has 65"),
        ("mysql", "cats 😀", "outside the Basic Multilingual Plane"),
        ("mysql", "trailing ", "cannot end with a space"),
        ("dm", "x" * 128, None),
        ("dm", "数" * 43, "DM8 names hold at most 128 bytes; it has 129"),
        ("sqlite", "x" * 500 + " 😀 ", None),
        ("sqlite", "a\x00b", "NUL character"),
    ],
)
def test_name_problem(backend: str, name: str, problem: str | None) -> None:
    found = name_problem(backend, name)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_binary_type_per_backend() -> None:
    assert isinstance(binary_type("mysql", 10), mysql.LONGBLOB)
    small = binary_type("dm", DM_VARBINARY_LIMIT)
    assert isinstance(small, sa.VARBINARY) and small.length == DM_VARBINARY_LIMIT
    assert type(binary_type("dm", DM_VARBINARY_LIMIT + 1)) is sa.LargeBinary
    assert type(binary_type("dm", None)) is sa.LargeBinary
    assert type(binary_type("postgresql", 10)) is sa.LargeBinary


@pytest.mark.parametrize(
    ("codec", "storage"),
    [
        (FeatureCodec("array", "|u1", (3, 32, 32)), "PLAIN"),
        (FeatureCodec("array", "<f4", (2000,)), "PLAIN"),
        (FeatureCodec("array", "<f4", (2001,)), "EXTERNAL"),
        (FeatureCodec("varlen", "<i8"), "MAIN"),
        (FeatureCodec("bytes"), "MAIN"),
        (FeatureCodec("text"), None),
        (FeatureCodec("numeric", columns=("a", "b")), None),
    ],
)
def test_postgres_storage(codec: FeatureCodec, storage: str | None) -> None:
    assert postgres_storage(codec) == storage


def test_dataset_table_columns() -> None:
    numeric = dataset_table(sa.MetaData(), "t", FeatureCodec("numeric", columns=("a", "b")), "none", "sqlite")
    assert [c.name for c in numeric.columns] == ["row_id", "a", "b"]
    assert [c.name for c in feature_columns(numeric)] == ["a", "b"]
    labelled = dataset_table(sa.MetaData(), "t", FeatureCodec("text"), "float", "mysql")
    assert [c.name for c in labelled.columns] == ["row_id", "features", "label"]
    assert [c.name for c in labelled.primary_key] == ["row_id"]
    assert labelled.c.row_id.autoincrement is False
    assert not any(c.nullable for c in labelled.columns)


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (mysql.dialect(), "name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"),
        (postgresql.dialect(), "name VARCHAR(255) NOT NULL"),
        (sqlite.dialect(), "name VARCHAR(255) NOT NULL"),
    ],
    ids=["mysql", "postgresql", "sqlite"],
)
def test_registry_names_compare_exactly(dialect: sa.Dialect, expected: str) -> None:
    assert expected in str(CreateTable(registry_table(sa.MetaData())).compile(dialect=dialect))


def test_sqlite_row_id_is_the_rowid() -> None:
    ddl = str(CreateTable(dataset_table(sa.MetaData(), "t", FeatureCodec("bytes"), "int", "sqlite")).compile(
        dialect=sqlite.dialect()))
    assert "row_id INTEGER NOT NULL" in ddl and "PRIMARY KEY (row_id)" in ddl


_FEATURE_STORAGE = {
    # backend: (SQL returning the features column's type or storage, expected value)
    "postgresql": (
        "SELECT a.attstorage FROM pg_attribute a WHERE a.attrelid = CAST(:t AS regclass) AND a.attname = 'features'",
        "p",
    ),
    "mysql": (
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = :t AND column_name = 'features'",
        "longblob",
    ),
    "sqlite": ("SELECT type FROM pragma_table_info(:t) WHERE name = 'features'", "BLOB"),
    "dm": ("SELECT data_type FROM user_tab_columns WHERE table_name = UPPER(:t) AND column_name = 'FEATURES'", "VARBINARY"),
}


def test_features_column_as_created(db_url: str, backend: str, table_name: str) -> None:
    """CIFAR-sized samples: in-row PLAIN storage on PostgreSQL (no TOAST on read), LONGBLOB on MySQL, BLOB on SQLite, VARBINARY on DM8."""
    db = Database(db_url)
    write_arrays(db, table_name, np.zeros((2, 3, 32, 32), np.uint8), [0, 1], progress=False)
    query, expected = _FEATURE_STORAGE[backend]
    with db.connect() as conn:
        found = conn.execute(sa.text(query), {"t": table_name}).scalar_one()
    assert str(found).lower() == expected.lower()
    db.dispose()
