"""Fixtures of the checkpoint tests: model and prediction table names under the per-test prefix (dropped after)."""

from __future__ import annotations

import pytest

from .tiny import quiet_lightning


@pytest.fixture(autouse=True)
def _quiet() -> None:
    quiet_lightning()


@pytest.fixture
def models(table_name: str) -> str:
    """A model table name; it and its ``_chunks`` table start with the test's prefix, so both are dropped."""
    return f"{table_name}_models"
