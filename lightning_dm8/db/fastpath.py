"""Driver-specific bulk paths: the SQL text still comes from the dialect, the rows go through the raw cursor.

* PostgreSQL: ``COPY ... FROM STDIN (FORMAT BINARY)`` for writes, a binary-protocol cursor for reads.
* DM8: the raw dmPython cursor's ``executemany`` with a list (dmSQLAlchemy's executemany appends RETURNING).
* MySQL/MariaDB and SQLite: ``executemany`` on the raw cursor (PyMySQL folds it into multi-row INSERTs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa


def _positional(compiled: sa.engine.Compiled, params: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
    """Parameters in the form the driver's paramstyle wants."""
    if compiled.positional:
        return tuple(params[name] for name in compiled.positiontup or ())  # type: ignore[attr-defined]
    return params


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (tuples in the table's column order) inside the connection's open transaction."""
    if not rows:
        return
    dialect = conn.dialect
    driver = conn.connection.driver_connection
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy_rows(conn, driver, table, rows)
        return
    compiled = table.insert().compile(dialect=dialect)
    names = [c.name for c in table.columns]
    cursor = conn.connection.cursor()
    try:
        if compiled.positional:
            order = [names.index(p) for p in compiled.positiontup or ()]  # type: ignore[attr-defined]
            params: list[Any] = [tuple(row[i] for i in order) for row in rows]
        else:
            params = [dict(zip(names, row)) for row in rows]
        cursor.executemany(str(compiled), params)
    finally:
        cursor.close()


def _copy_rows(conn: sa.Connection, driver: Any, table: sa.Table, rows: Sequence[Sequence[Any]]) -> None:
    preparer = conn.dialect.identifier_preparer
    columns = ", ".join(preparer.quote(c.name) for c in table.columns)
    statement = f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN (FORMAT BINARY)"
    types = [_pg_type(c.type) for c in table.columns]
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _pg_type(sa_type: sa.types.TypeEngine) -> str:
    if isinstance(sa_type, sa.LargeBinary):
        return "bytea"
    if isinstance(sa_type, sa.BigInteger):
        return "int8"
    if isinstance(sa_type, sa.Float):
        return "float8"
    return "text"


class RangeQuery:
    """``SELECT ... WHERE row_id BETWEEN lo AND hi ORDER BY row_id``, compiled once, run on a raw cursor."""

    def __init__(self, table: sa.Table, dialect: sa.Dialect) -> None:
        row_id = table.c.row_id
        statement = (
            sa.select(*table.columns)
            .where(row_id.between(sa.bindparam("lo"), sa.bindparam("hi")))
            .order_by(row_id)
        )
        self.compiled = statement.compile(dialect=dialect)
        self.sql = str(self.compiled)
        self._binary = dialect.name == "postgresql" and dialect.driver == "psycopg"

    def fetch(self, dbapi_connection: Any, lo: int, hi: int) -> list[Any]:
        """Rows with ``lo <= row_id <= hi`` in row id order, from a raw DB-API connection."""
        cursor = dbapi_connection.cursor(binary=True) if self._binary else dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, _positional(self.compiled, {"lo": int(lo), "hi": int(hi)}))
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
