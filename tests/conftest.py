"""Backend fixtures: every backend-parametrized test runs on SQLite, the real PostgreSQL and MariaDB servers,
and on DM8 when LIGHTNING_DM8_TEST_URL names one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from lightning_dm8.db.engine import Database

from ldm8_backends import BACKENDS, server_url  # noqa: E402  (tests/ is on sys.path)


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
