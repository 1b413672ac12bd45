"""The predictions table: ``row_id`` (the input row's id, primary key), ``prediction`` and ``scores``.

``prediction`` is BIGINT (class ids) or DOUBLE (values); ``scores`` holds per-class probabilities as one
little-endian float32 blob (decode with ``numpy.frombuffer(scores, "<f4")``; NULL when the model gives none). One
blob column rather than a column per class keeps the schema independent of the number of classes.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa

from lightning_dm8.db.backends import Backend

PredictionKind = Literal["int", "float"]

COLUMNS = ("row_id", "prediction", "scores")
"""The columns of every predictions table, in order: a table with other columns was not made by the writer."""


def prediction_table(name: str, backend: Backend, kind: PredictionKind, score_width: int | None) -> sa.Table:
    """The predictions table ``name`` on ``backend``; ``score_width`` is the number of classes (None: it varies)."""
    value_type: sa.types.TypeEngine[Any] = sa.BigInteger() if kind == "int" else sa.Float(53)
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("row_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("prediction", value_type, nullable=False),
        sa.Column("scores", backend.binary_type(None if score_width is None else 4 * score_width)),
    )


def is_prediction_table(conn: sa.Connection, name: str) -> bool:
    """Whether the existing table ``name`` has exactly the predictions table's columns (what ``replace`` may drop)."""
    columns = [c["name"].lower() for c in sa.inspect(conn).get_columns(name)]
    return sorted(columns) == sorted(COLUMNS)
