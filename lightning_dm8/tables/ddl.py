"""DDL the writers need beyond CREATE/DROP: renaming a table, PostgreSQL column storage, planner statistics.
Identifiers quoted."""

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


def analyze_table(conn: sa.Connection, name: str) -> None:
    """Refresh the planner's statistics of a freshly written table (PostgreSQL, MySQL/MariaDB).

    Without them PostgreSQL plans the loader's ``row_id BETWEEN`` range reads as a bitmap heap scan plus a sort
    (1.6 ms per 256-row block measured here, against 0.2 ms for the index scan it picks once it knows the table).
    SQLite and DM8 already read a primary-key range in key order.
    """
    quote = conn.dialect.identifier_preparer.quote
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {quote(name)}")
    elif conn.dialect.name in ("mysql", "mariadb"):
        conn.exec_driver_sql(f"ANALYZE TABLE {quote(name)}").fetchall()
