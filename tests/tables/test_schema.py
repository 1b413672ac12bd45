"""Table definitions: dataset and registry columns, typed by each backend; the registry's exact names."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateTable

from lightning_dm8 import Database, write_arrays
from lightning_dm8.db.backends import backend_named
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.schema import dataset_table, registry_table


def test_dataset_table_columns() -> None:
    numeric = dataset_table(sa.MetaData(), "t", FeatureCodec("numeric", columns=("a", "b")), "none",
                            backend_named("sqlite"))
    assert [c.name for c in numeric.columns] == ["row_id", "a", "b"]
    labelled = dataset_table(sa.MetaData(), "t", FeatureCodec("text"), "float", backend_named("mysql"))
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
    table = dataset_table(sa.MetaData(), "t", FeatureCodec("bytes"), "int", backend_named("sqlite"))
    ddl = str(CreateTable(table).compile(
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
    "dm": ("SELECT data_type FROM user_tab_columns WHERE table_name = UPPER(:t) AND column_name = 'FEATURES'",
           "VARBINARY"),
}


def test_features_column_as_created(db_url: str, backend: str, table_name: str) -> None:
    """CIFAR-sized samples: in-row PLAIN storage on PostgreSQL (no TOAST on read), LONGBLOB on MySQL, BLOB on SQLite,
    VARBINARY on DM8."""
    db = Database(db_url)
    info = write_arrays(db, table_name, np.zeros((2, 3, 32, 32), np.uint8), [0, 1], progress=False)
    query, expected = _FEATURE_STORAGE[backend]
    with db.connect() as conn:
        found = conn.execute(sa.text(query), {"t": info.physical}).scalar_one()
    assert str(found).lower() == expected.lower()
    db.dispose()
