"""Helpers of the dataset-table tests: checks that nothing was written, raw SQL access to a dataset table."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from lightning_dm8 import Database, DatasetTable, InvalidInputError, write_arrays
from lightning_dm8.tables import registry
from lightning_dm8.tables.ddl import table_exists

MYSQL_URL = os.environ.get("LIGHTNING_DM8_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def assert_no_staging_left(db: Database, staged: list[str]) -> None:
    """None of the staging tables ``staged`` (see the ``staged`` fixture) is left behind."""
    with db.connect("check") as conn:
        leftovers = [s for s in staged if table_exists(conn, s)]
    assert not leftovers, f"staging tables left behind: {leftovers}"


def assert_nothing_written(db: Database, name: str, staged: list[str]) -> None:
    """No table ``name``, no registry entry for it, and none of the staging tables ``staged`` left behind."""
    with db.connect("check") as conn:
        assert not table_exists(conn, name), f"table {name!r} exists"
        assert registry.read_info(conn, name) is None, f"registry entry for {name!r} exists"
    assert_no_staging_left(db, staged)


def reflect(db: Database, name: str) -> sa.Table:
    """The columns of dataset ``name``'s current physical table as the database describes them, for editing it with
    plain SQL. Columns only: the edits need no constraints, and reading those is what the DM8 behaviour model cannot
    serve (dmSQLAlchemy reflects them through an Oracle-style ``(+)`` join), so the tests that edit run there too."""
    with db.connect("reflect") as conn:
        info = registry.read_info(conn, name)
        physical = info.table_name if info else name
        columns = sa.inspect(conn).get_columns(physical)
    return sa.Table(physical, sa.MetaData(),
                    *(sa.Column(c["name"], c["type"], nullable=c["nullable"]) for c in columns))


def execute(db: Database, statement: sa.Executable, params: Any = None) -> None:
    with db.begin("test edit") as conn:
        conn.execute(statement, params)


def read_all(table: DatasetTable) -> tuple[Any, np.ndarray | None]:
    """Every row's features and labels through one range query."""
    block = table.read_range(0, len(table))
    assert block.row_ids.tolist() == list(range(len(table)))
    return block.features, block.labels


def assert_append_refused(db: Database, name: str, first: tuple[Any, Any], then: tuple[Any, Any], stored: str,
                          new_rows: str) -> None:
    """Writing ``first`` then appending ``then`` (features, labels) fails with the message describing both sides
    (``stored`` and ``new_rows``, regular expressions), and leaves the dataset as it was."""
    info = write_arrays(db, name, *first, progress=False)
    with pytest.raises(InvalidInputError, match=rf"cannot append to dataset {re.escape(repr(name))}: it stores "
                                                rf"{stored}, the new rows are {new_rows}$"):
        write_arrays(db, name, *then, if_exists="append", progress=False)
    assert DatasetTable(db, name).validate() == info
