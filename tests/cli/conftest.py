"""Fixtures of the command-line tests: no database URL or import path from the environment, Lightning quiet."""

from __future__ import annotations

import io
import sys

import pytest
from checkpoint.tiny import quiet_lightning

from lightning_dm8.cli import main
from lightning_dm8.db.urls import PASSWORD_ENV, URL_ENV


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    quiet_lightning()
    for name in (URL_ENV, PASSWORD_ENV, "LIGHTNING_DM8_IMPORT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["lightning-dm8"])
    monkeypatch.setattr(sys, "path", list(sys.path))  # --import-path changes stay inside the test
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal unless a test gives one


@pytest.fixture
def models(table_name: str) -> str:
    """A model table name; it and its ``_chunks`` table start with the test's prefix, so both are dropped."""
    return f"{table_name}_models"


class Run:
    """``lightning-dm8 ARGS`` in this process: exit status, stdout and stderr."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(capsys)


class Terminal(io.StringIO):
    """A stdin that is a terminal, with the answers typed in advance."""

    def isatty(self) -> bool:
        return True
