"""The DM8 path without a server: the SQL the checkpoint and prediction code sends, compiled by dmSQLAlchemy, and the
storage each table gets at each page size."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from lightning_dm8.checkpoint.store import CheckpointStore
from lightning_dm8.db.backends.dm import plan_rows
from lightning_dm8.db.engine import Database
from lightning_dm8.predictions.schema import prediction_table


@pytest.fixture(scope="module")
def dm() -> Database:
    pytest.importorskip("dmSQLAlchemy")
    pytest.importorskip("dmPython")
    return Database("dm://u:p@h:5236")  # never connected: only the dialect is used


def test_model_table_ddl_uses_blob_and_plain_bigint_keys(dm: Database) -> None:
    store = CheckpointStore(dm, "ldm8_checkpoints")
    header = str(CreateTable(store.tables.header).compile(dialect=dm.dialect))
    chunks = str(CreateTable(store.tables.chunks).compile(dialect=dm.dialect))
    assert re.search(r"\bdata BLOB NOT NULL", chunks)
    assert "PRIMARY KEY (run, version, chunk_no)" in chunks and "PRIMARY KEY (run, version)" in header
    assert "IDENTITY" not in header + chunks  # versions are assigned by the saver, never by the server
    assert re.search(r"\bversion BIGINT NOT NULL", header) and "monitor_value FLOAT" in header
    assert '"' not in header + chunks  # no reserved word needed quoting: plain names work from raw SQL too


def test_model_tables_are_not_clustered_and_chunks_never_need_long_rows(dm: Database) -> None:
    store = CheckpointStore(dm, "ldm8_checkpoints")
    for page in (4096, 8192, 16384, 32768):
        chunks = plan_rows(store.tables.chunks, page)
        assert not chunks.clustered and not chunks.long_row  # the data is a BLOB, out of the record's count
        assert not plan_rows(store.tables.header, page).clustered


def test_chunk_insert_and_select_are_positional_without_returning(dm: Database) -> None:
    store = CheckpointStore(dm, "ldm8_checkpoints")
    insert = store.tables.chunks.insert().compile(dialect=dm.dialect)  # what Backend.insert_rows executes
    assert insert.positional and str(insert).count("?") == 4
    assert "RETURNING" not in str(insert).upper()
    select = store.chunk_query().compile(dialect=dm.dialect)
    assert select.positional and list(select.positiontup) == ["r", "v", "n"]
    assert str(select).count("?") == 3 and "RETURNING" not in str(select).upper()
    header = store.tables.header
    flip = header.update().where(header.c.run == "r", header.c.complete == 0).values(complete=1)
    prune = header.delete().where(header.c.version.in_([1, 2]))
    for statement in (flip, header.insert().values(run="r", version=1), prune):
        sql = str(statement.compile(dialect=dm.dialect, compile_kwargs={"render_postcompile": True}))
        assert "?" in sql and "RETURNING" not in sql.upper()


@pytest.mark.parametrize(("classes", "page", "long_row"), [
    (10, 8192, False),
    (900, 8192, False),
    (975, 8192, True),  # 3,900 bytes of scores: over the in-row limit of 8 KB pages
    (2000, 8192, True),
    (2000, 16384, True),
    (2000, 32768, False),
])
def test_prediction_scores_are_exact_varbinary_with_long_rows_when_the_page_needs_them(
    dm: Database, classes: int, page: int, long_row: bool
) -> None:
    table = prediction_table("preds", dm.backend, "int", classes)
    ddl = str(CreateTable(table).compile(dialect=dm.dialect))
    assert "prediction BIGINT NOT NULL" in ddl and f"scores VARBINARY({4 * classes})" in ddl
    plan = plan_rows(table, page)
    assert plan.long_row is long_row and plan.clustered


def test_prediction_scores_beyond_varbinary_go_to_blob(dm: Database) -> None:
    wide = str(CreateTable(prediction_table("preds", dm.backend, "float", 5000)).compile(dialect=dm.dialect))
    assert "prediction FLOAT" in wide and "scores BLOB" in wide
    assert isinstance(prediction_table("p", dm.backend, "int", None).c.scores.type, sa.LargeBinary)
