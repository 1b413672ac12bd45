"""Which database each backend's tests use: importable by test modules (``from ldm8_backends import ...``).

DM8 tests run on the server ``LIGHTNING_DM8_TEST_URL`` names (``scripts/dm8-test.sh`` starts one in a container).
Without one they are skipped, unless ``LIGHTNING_DM8_TEST_MODEL=1`` runs them on the DM8 behaviour model
(``tests/dm8model``, installed as ``dmPython`` for the whole session; ``LIGHTNING_DM8_TEST_MODEL_PAGE_SIZE`` and
``LIGHTNING_DM8_TEST_MODEL_CASE_SENSITIVE=N`` set the model server up). The model runs in this process only: tests
that start other processes cannot reach it.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

import pytest

PG_URL = os.environ.get("LIGHTNING_DM8_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LIGHTNING_DM8_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
DM_URL = os.environ.get("LIGHTNING_DM8_TEST_URL")
DM_MODEL = not DM_URL and os.environ.get("LIGHTNING_DM8_TEST_MODEL", "") not in ("", "0")
BACKENDS = ["sqlite", "postgresql", "mysql", "dm"]

_model: dict[str, Any] = {}


def _model_url() -> str:
    """The session's DM8 model server (started and installed as ``dmPython`` on first use)."""
    if "url" not in _model:
        pytest.importorskip("dmSQLAlchemy")
        from dm8model import DM8Server
        from dm8model.driver import module

        server = DM8Server(
            int(os.environ.get("LIGHTNING_DM8_TEST_MODEL_PAGE_SIZE", "8192")),
            case_sensitive=os.environ.get("LIGHTNING_DM8_TEST_MODEL_CASE_SENSITIVE", "Y").upper() not in ("N", "0"),
        )
        sys.modules["dmPython"] = module(server)
        atexit.register(server.close)
        _model.update(server=server, url=server.url())
    return str(_model["url"])


def server_url(backend: str, tmp_path) -> str:
    """The URL a test uses for ``backend``; DM8 tests skip (with the reason) when no server is configured."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    if backend == "postgresql":
        return PG_URL
    if backend == "mysql":
        return MYSQL_URL
    if DM_URL:
        return DM_URL
    if DM_MODEL:
        return _model_url()
    pytest.skip("no DM8 server: set LIGHTNING_DM8_TEST_URL=dm+dmPython://USER:PASSWORD@HOST:5236 to run on DM8 "
                "(scripts/dm8-test.sh), or LIGHTNING_DM8_TEST_MODEL=1 to run on the DM8 behaviour model")
