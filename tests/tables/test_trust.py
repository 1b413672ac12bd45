"""Writers touch only datasets: a user's own tables, the registry and bad labels are refused, on every backend."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from lightning_dm8 import Database, DatasetTable, write_arrays, write_query
from lightning_dm8.errors import (
    DatabaseError,
    InvalidDatasetError,
    InvalidInputError,
    TableExistsError,
    TableNotFoundError,
)
from lightning_dm8.tables import registry


@pytest.fixture
def users(db: Database, table_name: str) -> str:
    """A table of the user's own (not a dataset) with one row."""
    name = f"{table_name}_users"
    with db.begin("create users") as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, email VARCHAR(50))"))
        conn.execute(sa.text(f"INSERT INTO {name} VALUES (1, 'a@example.org')"))
    return name


def _rows(db: Database, name: str) -> list[tuple]:
    with db.connect("read") as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT id, email FROM {name}"))]


@pytest.mark.parametrize("if_exists", ["replace", "append", "fail"])
def test_a_users_own_table_is_never_replaced(db: Database, users: str, if_exists: str) -> None:
    with pytest.raises(TableExistsError, match=rf"table '{users}' in .* (exists but is not a dataset|already exists)"):
        write_arrays(db, users, np.zeros((3, 2), np.float32), [0, 1, 2], if_exists=if_exists, progress=False)
    assert _rows(db, users) == [(1, "a@example.org")]


def test_force_replaces_a_foreign_table_explicitly(db: Database, users: str) -> None:
    info = write_arrays(db, users, np.zeros((3, 2), np.float32), [0, 1, 2], if_exists="replace", force=True,
                        progress=False)
    assert info.row_count == 3 and len(DatasetTable(db, users)) == 3


@pytest.mark.parametrize("name", ["ldm8_datasets", "LDM8_checkpoints", "ldm8_tmp_0123456789ab"])
def test_the_projects_own_tables_are_not_dataset_names(db: Database, name: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"dataset name '{name}' starts with 'ldm8_', which is reserved"):
        write_arrays(db, name, np.zeros((3, 2), np.float32), [0, 1, 2], if_exists="replace", force=True,
                     progress=False)


def test_drop_leaves_a_users_table_and_the_registry_alone(db: Database, users: str, table_name: str) -> None:
    write_arrays(db, table_name, np.zeros((3, 2), np.float32), [0, 1, 2], progress=False)
    with pytest.raises(InvalidDatasetError, match=rf"table '{users}' .* is not a dataset table"):
        DatasetTable(db, users).drop()
    with pytest.raises(TableNotFoundError):
        DatasetTable(db, f"missing_{uuid.uuid4().hex[:6]}").drop()
    assert _rows(db, users) == [(1, "a@example.org")]
    DatasetTable(db, table_name).drop()
    with db.connect("check") as conn:
        assert registry.read_info(conn, table_name) is None and not sa.inspect(conn).has_table(table_name)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_labels_that_are_not_finite_are_refused_naming_the_row(db: Database, table_name: str, bad: float) -> None:
    labels = np.array([0.5, 1.5, bad, 2.0])
    with pytest.raises(InvalidInputError, match=rf"sample 2: label {bad!r} is not a finite number"):
        write_arrays(db, table_name, np.zeros((4, 2), np.float32), labels, progress=False)
    with db.connect("check") as conn:
        assert registry.read_info(conn, table_name) is None and not sa.inspect(conn).has_table(table_name)


def test_write_query_runs_nothing_but_one_select(db: Database, table_name: str, users: str) -> None:
    """The attack that created a table on PostgreSQL: a second statement after the SELECT, with a COMMIT."""
    planted = f"{table_name}_planted"
    attack = f"SELECT id AS x, id AS label FROM {users}; CREATE TABLE {planted} (a INT); COMMIT; SELECT 1"
    with pytest.raises(InvalidInputError, match="more than one statement"):
        write_query(db, table_name, attack, progress=False)
    with db.connect("check") as conn:
        assert not sa.inspect(conn).has_table(planted)


_WRITING_FUNCTION = {
    "postgresql": "CREATE FUNCTION {f}() RETURNS integer LANGUAGE sql AS $$ DELETE FROM {t}; SELECT 1 $$",
    "mysql": "CREATE FUNCTION {f}() RETURNS INTEGER MODIFIES SQL DATA BEGIN DELETE FROM {t}; RETURN 1; END",
}


def test_write_query_reads_in_a_read_only_transaction(db: Database, table_name: str, users: str) -> None:
    """A function that writes passes the one-statement check, but not the read-only transaction it runs in."""
    if db.backend.name not in _WRITING_FUNCTION:
        pytest.skip(f"{db.backend.title}: no SQL-defined functions to write with")
    function = f"{table_name}_wipe"
    with db.begin("create a writing function") as conn:
        conn.exec_driver_sql(_WRITING_FUNCTION[db.backend.name].format(f=function, t=users))
    try:
        with pytest.raises(DatabaseError, match=r"(?i)read[- ]only transaction"):
            write_query(db, table_name, f"SELECT {function}() AS x, 1 AS label", progress=False)
        assert _rows(db, users) == [(1, "a@example.org")]
    finally:
        with db.begin("drop the function") as conn:
            conn.exec_driver_sql(f"DROP FUNCTION {function}")


def test_write_query_still_reads_one_select(db: Database, table_name: str, users: str) -> None:
    info = write_query(db, table_name, f"SELECT id AS x, id AS label FROM {users};", progress=False)
    assert info.row_count == 1
