"""Which database each backend's tests use: importable by test modules (``from ldm8_backends import ...``)."""

from __future__ import annotations

import os

import pytest

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
