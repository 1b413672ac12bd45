"""Fixtures of the predictions tests: Lightning kept quiet (its advice says nothing about the code under test)."""

from __future__ import annotations

import pytest
from checkpoint.tiny import quiet_lightning


@pytest.fixture(autouse=True)
def _quiet() -> None:
    quiet_lightning()
