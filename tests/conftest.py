"""Backend fixtures: every backend-parametrized test runs on SQLite, the real PostgreSQL and MariaDB servers,
and on DM8 when LIGHTNING_DM8_TEST_URL names one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from ldm8_backends import BACKENDS, server_url  # noqa: E402  (tests/ is on sys.path)

from lightning_dm8.db.engine import Database
from lightning_dm8.tables import registry


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path) -> str:
    return server_url(backend, tmp_path)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A Database for the test's backend, its connections closed afterwards."""
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def table_name(db_url: str) -> Iterator[str]:
    """A fresh table name; the table and its registry entry are dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    _drop_prefixed(db_url, name)


def _drop_prefixed(url: str, prefix: str) -> None:
    """Drop the test's tables, views and datasets (with every version's physical table) whose names start with
    ``prefix``."""
    db = Database(url)
    try:
        with db.begin("test cleanup") as conn:
            inspector = sa.inspect(conn)
            for view in inspector.get_view_names():
                if view.lower().startswith(prefix.lower()):
                    db.backend.drop_view(conn, view)
            doomed = {t for t in inspector.get_table_names() if t.lower().startswith(prefix.lower())}
            if inspector.has_table(registry.VERSIONS.name):
                doomed |= {i.table_name for i in registry.list_versions(conn) if i.name.lower().startswith(prefix)}
                conn.execute(registry.VERSIONS.delete().where(registry.VERSIONS.c.name.like(f"{prefix}%")))
            if inspector.has_table(registry.REGISTRY.name):
                conn.execute(registry.REGISTRY.delete().where(registry.REGISTRY.c.name.like(f"{prefix}%")))
            existing = set(inspector.get_table_names())
            for table in sorted(doomed & existing):
                sa.Table(table, sa.MetaData()).drop(conn)
    finally:
        db.dispose()
