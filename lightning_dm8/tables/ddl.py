"""DDL the writers need beyond CREATE/DROP: renaming a table, PostgreSQL column storage. Identifiers quoted."""

from __future__ import annotations

import sqlalchemy as sa

from lightning_dm8.db.schema import FEATURES, postgres_storage
from lightning_dm8.tables.codecs import FeatureCodec


def rename_table(conn: sa.Connection, old: str, new: str) -> None:
    quote = conn.dialect.identifier_preparer.quote
    if conn.dialect.name in ("mysql", "mariadb"):
        conn.exec_driver_sql(f"RENAME TABLE {quote(old)} TO {quote(new)}")
    else:
        conn.exec_driver_sql(f"ALTER TABLE {quote(old)} RENAME TO {quote(new)}")


def create_dataset_table(conn: sa.Connection, table: sa.Table, codec: FeatureCodec) -> None:
    """Create ``table``; on PostgreSQL also pick the features column's storage (see ``postgres_storage``)."""
    table.create(conn)
    storage = postgres_storage(codec) if conn.dialect.name == "postgresql" else None
    if storage:
        quote = conn.dialect.identifier_preparer.quote
        conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ALTER COLUMN {quote(FEATURES)} SET STORAGE {storage}")


def table_exists(conn: sa.Connection, name: str) -> bool:
    return sa.inspect(conn).has_table(name)
