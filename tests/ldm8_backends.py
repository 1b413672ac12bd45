"""Which database each backend's tests use: importable by test modules (``from ldm8_backends import ...``).

DM8 tests run on the server ``LIGHTNING_DM8_TEST_URL`` names (``scripts/dm8-test.sh`` starts one in a container).
Without one they are skipped, unless ``LIGHTNING_DM8_TEST_MODEL=1`` runs them on the DM8 behaviour model
(``tests/dm8model``, installed as ``dmPython`` for the whole session; ``LIGHTNING_DM8_TEST_MODEL_PAGE_SIZE`` and
``LIGHTNING_DM8_TEST_MODEL_CASE_SENSITIVE=N`` set the model server up). The model runs in this process only: tests
that start other processes cannot reach it.

A test that runs into one of the model's documented limits (``MODEL_LIMITS``) is skipped on the model only, through
:func:`requires_real_dm8` or the ``requires_real_dm8(limit)`` marker (handled in tests/conftest.py); on a real server
(``LIGHTNING_DM8_TEST_URL``) and on the other backends it runs.
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

MODEL_ONE_WRITER = "serves one writer at a time"
MODEL_IN_PROCESS = "lives in the test process, so a subprocess cannot reach it"
MODEL_LIMITS = frozenset({MODEL_ONE_WRITER, MODEL_IN_PROCESS})
"""The DM8 behaviour model's limits a test may be skipped for, as its documentation lists them
(tests/dm8model/__init__.py, "Limits"): none of them is a DM8 behaviour."""


def requires_real_dm8(backend: str, limit: str) -> None:
    """Skip the running test when ``backend`` is DM8 served by the behaviour model and the test needs what the model
    does not do (``limit``, one of :data:`MODEL_LIMITS`); do nothing on a real DM8 server and on other backends."""
    if limit not in MODEL_LIMITS:
        raise ValueError(f"not a documented limit of the DM8 behaviour model: {limit!r}")
    if backend == "dm" and DM_MODEL:
        pytest.skip(f"the DM8 behaviour model {limit} (see tests/dm8model/__init__.py, Limits); "
                    f"the test runs on a real DM8 server (LIGHTNING_DM8_TEST_URL)")


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
