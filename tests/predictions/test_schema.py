"""The predictions table's definition on each backend, and which existing tables ``replace`` may drop."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from lightning_dm8.db.backends import backend_named
from lightning_dm8.db.engine import Database
from lightning_dm8.predictions.schema import is_prediction_table, prediction_table


def test_prediction_scores_fit_varbinary_on_dm8() -> None:
    pytest.importorskip("dmSQLAlchemy")
    pytest.importorskip("dmPython")
    dm = Database("dm://u:p@h:5236")  # never connected: only the dialect is used
    small = str(CreateTable(prediction_table("preds", dm.backend, "int", 10)).compile(dialect=dm.dialect))
    assert "prediction BIGINT NOT NULL" in small and re.search(r"scores VARBINARY\(\d+\)", small)
    wide = str(CreateTable(prediction_table("preds", dm.backend, "float", 5000)).compile(dialect=dm.dialect))
    assert "prediction FLOAT" in wide and "scores BLOB" in wide
    assert isinstance(prediction_table("p", dm.backend, "int", None).c.scores.type, sa.LargeBinary)


def test_only_a_table_with_the_predictions_columns_is_a_predictions_table(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    with db.begin() as conn:
        prediction_table("preds", backend_named("sqlite"), "float", 3).create(conn)
        sa.Table("users", sa.MetaData(), sa.Column("row_id", sa.Integer), sa.Column("name", sa.Text)).create(conn)
        assert is_prediction_table(conn, "preds")
        assert not is_prediction_table(conn, "users")
    db.dispose()
