"""Plain DB-API connections of each backend's usual Python driver, opened from the benchmark's SQLAlchemy URLs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def connect(url: str, driver: str | None = None) -> Any:
    """A raw DB-API connection: sqlite3, psycopg (3), PyMySQL or mysqlclient (``driver="mysqlclient"``)."""
    u = sa.engine.make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        import sqlite3

        return sqlite3.connect(u.database, check_same_thread=False)
    if backend == "postgresql":
        import psycopg

        return psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password or None,
                               dbname=u.database)
    if backend in ("mysql", "mariadb"):
        kwargs = dict(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                      database=u.database)
        if driver == "mysqlclient":
            import MySQLdb

            return MySQLdb.connect(**{k if k != "database" else "db": v for k, v in kwargs.items()})
        import pymysql

        return pymysql.connect(**kwargs)
    # any other backend (DM8): the project's engine hands out its driver's connection
    from lightning_dm8.db.engine import Database

    return Database(url).engine.raw_connection().driver_connection


def placeholder(url: str) -> str:
    backend = sa.engine.make_url(url).get_backend_name()
    return "?" if backend in ("sqlite", "dm") else "%s"


def quote(url: str, name: str) -> str:
    backend = sa.engine.make_url(url).get_backend_name()
    return f"`{name}`" if backend in ("mysql", "mariadb") else f'"{name}"'
