"""Backend fixtures: every backend-parametrized test runs on SQLite, the real PostgreSQL and MariaDB servers,
and on DM8 when LIGHTNING_DM8_TEST_URL names one (or on the DM8 behaviour model, see tests/ldm8_backends.py).

The ``requires_real_dm8(limit)`` marker skips a backend-parametrized test on the DM8 behaviour model only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from ldm8_backends import BACKENDS, requires_real_dm8, server_url  # noqa: E402  (tests/ is on sys.path)

from lightning_dm8.db.engine import Database
from lightning_dm8.tables import registry


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_real_dm8(limit): skip the test's dm case on the DM8 behaviour model, which has the documented "
        "limit (one of ldm8_backends.MODEL_LIMITS); it runs on a real DM8 server and on the other backends",
    )


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("requires_real_dm8")
    if marker is None:
        return
    callspec = getattr(item, "callspec", None)
    if callspec is None or "backend" not in callspec.params:
        pytest.fail(f"{item.nodeid}: requires_real_dm8 marks backend-parametrized tests only", pytrace=False)
    requires_real_dm8(callspec.params["backend"], *marker.args)


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
