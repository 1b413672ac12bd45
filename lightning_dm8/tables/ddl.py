"""DDL the writers need beyond CREATE/DROP: renaming, column storage and planner statistics, through the backend.
Identifiers quoted."""

from __future__ import annotations

import sqlalchemy as sa

from lightning_dm8.db.backends import Backend
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.schema import binary_columns


def create_dataset_table(conn: sa.Connection, backend: Backend, table: sa.Table, codec: FeatureCodec) -> None:
    """Create ``table`` and let the backend pick each binary column's storage."""
    backend.create_table(conn, table)
    for column, fixed_size in binary_columns(codec):
        backend.tune_binary_column(conn, table.name, column, fixed_size)


def table_exists(conn: sa.Connection, name: str) -> bool:
    return sa.inspect(conn).has_table(name)
