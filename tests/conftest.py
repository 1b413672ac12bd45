"""Backend fixtures: every backend-parametrized test runs on SQLite, the real PostgreSQL and MariaDB servers,
and on DM8 when LIGHTNING_DM8_TEST_URL names one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from lightning_dm8.db.engine import Database

PG_URL = os.environ.get("LIGHTNING_DM8_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LIGHTNING_DM8_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
DM_URL = os.environ.get("LIGHTNING_DM8_TEST_URL")
BACKENDS = ["sqlite", "postgresql", "mysql", "dm"]


def server_url(backend: str, tmp_path) -> str:
    """The URL a test uses for ``backend``; DM8 tests skip (with the reason) when no server is configured."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    if backend == "postgresql":
        return PG_URL
    if backend == "mysql":
        return MYSQL_URL
    if not DM_URL:
        pytest.skip("no DM8 server: set LIGHTNING_DM8_TEST_URL=dm+dmPython://USER:PASSWORD@HOST:5236 to run on DM8")
    return DM_URL


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path) -> str:
    return server_url(backend, tmp_path)


@pytest.fixture
def table_name(db_url: str) -> Iterator[str]:
    """A fresh table name; the table and its registry entry are dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    _drop_prefixed(db_url, name)


def _drop_prefixed(url: str, prefix: str) -> None:
    db = Database(url)
    try:
        with db.begin("test cleanup") as conn:
            inspector = sa.inspect(conn)
            for table in inspector.get_table_names():
                if table.lower().startswith(prefix.lower()):
                    sa.Table(table, sa.MetaData()).drop(conn)
            if inspector.has_table("ldm8_datasets"):
                registry = sa.Table("ldm8_datasets", sa.MetaData(), sa.Column("name", sa.String(255)))
                conn.execute(registry.delete().where(registry.c.name.like(f"{prefix}%")))
    finally:
        db.dispose()
