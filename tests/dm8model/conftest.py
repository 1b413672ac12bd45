"""Fixtures for tests that run the project on the DM8 behaviour model (:mod:`dm8model`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dm8model import DM8Server, serve


@pytest.fixture
def dm8(monkeypatch: pytest.MonkeyPatch) -> Iterator[DM8Server]:
    """A model server with DM8's defaults (8 KB pages, CASE_SENSITIVE=Y), installed as ``dmPython``."""
    pytest.importorskip("dmSQLAlchemy")
    with serve(monkeypatch) as server:
        yield server


@pytest.fixture(params=[True, False], ids=["case_sensitive", "case_insensitive"])
def dm8_any_case(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[DM8Server]:
    """A model server initialised with CASE_SENSITIVE=Y, then with CASE_SENSITIVE=N."""
    pytest.importorskip("dmSQLAlchemy")
    with serve(monkeypatch, case_sensitive=request.param) as server:
        yield server
