"""Bulk paths for rows: the SQL text comes from the dialect, the rows go through the raw DB-API cursor.

How each database inserts in bulk (PostgreSQL binary COPY, DM8's own ``executemany``, PyMySQL's multi-row INSERT)
lives in its backend module; this module runs the statements the loader and the writers share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from lightning_dm8.db.backends import Backend, backend_named
from lightning_dm8.db.backends.base import bind


def backend_of_dialect(dialect: sa.Dialect) -> Backend:
    """The backend that a connection's dialect belongs to."""
    name = dialect.name
    return backend_named({"mariadb": "mysql", "postgres": "postgresql"}.get(name, name))


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (tuples in the table's column order) inside the connection's open transaction, by the
    fastest bulk path of the connection's database."""
    backend_of_dialect(conn.dialect).insert_rows(conn, table, rows)


class RangeQuery:
    """``SELECT ... WHERE row_id BETWEEN lo AND hi ORDER BY row_id``, compiled once, run on a raw cursor."""

    def __init__(self, table: sa.Table, backend: Backend, dialect: sa.Dialect) -> None:
        row_id = table.c.row_id
        statement = (
            sa.select(*table.columns)
            .where(row_id.between(sa.bindparam("lo"), sa.bindparam("hi")))
            .order_by(row_id)
        )
        self.compiled = statement.compile(dialect=dialect)
        self.sql = str(self.compiled)
        self._backend = backend

    def fetch(self, dbapi_connection: Any, lo: int, hi: int) -> list[Any]:
        """Rows with ``lo <= row_id <= hi`` in row id order, from a raw DB-API connection."""
        cursor = self._backend.raw_cursor(dbapi_connection)
        try:
            cursor.execute(self.sql, bind(self.compiled, {"lo": int(lo), "hi": int(hi)}))
            rows = cursor.fetchall()
        except BaseException:
            # Keep the query's own error: on a lost connection, closing or rolling back fails too (PyMySQL with a
            # bare ``InterfaceError(0, '')``), and that error would hide the one that says the server went away.
            for end in (cursor.close, dbapi_connection.rollback):
                try:
                    end()
                except Exception:
                    pass
            raise
        cursor.close()
        # End the read transaction at once: an idle open one would hold locks that block writers and DDL,
        # and (MySQL REPEATABLE READ) pin an old snapshot.
        dbapi_connection.rollback()
        return rows
