"""The ``lightning-dm8`` entry point: one help listing every command, one error policy, an explicit import path."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

import pytest

from lightning_dm8.cli import main
from lightning_dm8.cli.app import IMPORT_PATH_ENV, build_parser
from lightning_dm8.cli.errors import UsageError, exit_status
from lightning_dm8.errors import DatabaseUnavailableError, InvalidInputError, TableNotFoundError

from .conftest import Run

EVERY_COMMAND = ("fit", "validate", "test", "predict", "import", "ls", "info", "drop", "gc", "checkpoints", "cache")


def test_help_lists_every_command_on_one_line(run: Run) -> None:
    code, out, _ = run("--help")
    assert code == 0
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ") and line.split()}
    assert set(EVERY_COMMAND) <= set(listed)
    assert all(len(listed[c].split()) > 1 for c in EVERY_COMMAND)  # each with its line of help
    for word in ("LIGHTNING_DM8_URL", "LIGHTNING_DM8_PASSWORD", IMPORT_PATH_ENV, "--import-path", "Exit status"):
        assert word in out
    code, out, _ = run()
    assert code == 2 and "checkpoints" in out


def _parsers(parser: argparse.ArgumentParser, path: str = "lightning-dm8") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{path} {name}")
    return found


def test_every_option_has_help_text() -> None:
    missing = [
        f"{path} {action.option_strings[-1]}"
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []


def test_mistakes_are_one_line_and_exit_2(run: Run, tmp_path: Path) -> None:
    code, out, err = run("ls", "--nosuch")
    assert (code, out) == (2, "") and err.startswith("error: unrecognized arguments: --nosuch") and err.count("\n") == 1
    code, _, err = run("import", "nosuch", "--url", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and err.startswith("error: argument source: invalid choice: 'nosuch'")
    code, _, err = run("checkpoints")
    assert code == 2 and "the following arguments are required" in err


def test_a_bad_url_and_a_missing_file_are_one_clear_line(run: Run, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run("ls", "--url", "notaurl")
    assert (code, out) == (2, "") and err == (
        "error: --url 'notaurl' is not a database URL; write it as sqlite:///path/to/file.db, "
        "postgresql://user@host:5432/db, mysql://user@host:3306/db or dm://user@host:5236\n")
    monkeypatch.setenv("LIGHTNING_DM8_URL", "notaurl")
    code, _, err = run("checkpoints", "list")
    assert code == 2 and err.startswith("error: $LIGHTNING_DM8_URL 'notaurl' is not a database URL")
    code, _, err = run("fit", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and err == f"error: --config {str(tmp_path / 'missing.yaml')!r}: no such file\n"
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  class_path: lightning.pytorch.demos.boring_classes.BoringModel\n"
                      "data:\n  url: notaurl\n")
    code, _, err = run("fit", "--config", str(config))
    assert code == 2 and err.startswith("error: DM8DataModule: url 'notaurl' is not a database URL") \
        and err.count("\n") == 1
    code, _, err = run("info", "x", "--url", f"sqlite:///{tmp_path / 'typo.db'}")
    assert code == 1 and "there is no database at" in err and not (tmp_path / "typo.db").exists()


def test_the_exit_status_policy() -> None:
    assert exit_status(UsageError("x")) == 2 and exit_status(InvalidInputError("x")) == 2
    assert exit_status(ValueError("bad file")) == 2 and exit_status(FileNotFoundError("no file")) == 2
    assert exit_status(TableNotFoundError("x")) == 1 and exit_status(DatabaseUnavailableError("x")) == 1
    from lightning_dm8.checkpoint.errors import CheckpointNotFoundError  # a FileNotFoundError, but a failure

    assert exit_status(CheckpointNotFoundError("x")) == 1 and exit_status(OSError("disk")) == 1


def test_a_password_in_an_error_is_masked_however_the_url_is_written(run: Run) -> None:
    for url in ("postgresql+psycopg://postgres@127.0.0.1:1/test?password=Sup3rS3cret",  # in the query string
                "postgresql+psycopg://postgres:p@Sup3rS3cret@127.0.0.1:1/test",  # an unescaped '@': ambiguous
                "postgresql+psycopg://postgres:x@127.0.0.1:1/test"):  # a one-character password
        code, out, err = run("checkpoints", "list", "--url", url)
        assert code in (1, 2) and out == "" and err.startswith("error: ") and err.count("\n") == 1
        assert "Sup3rS3cret" not in err and ":x@" not in err and "***" in err


def _write_model_module(folder: Path) -> str:
    name = f"ldm8_user_models_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(
        "import lightning.pytorch as pl\n\n\nclass Tiny(pl.LightningModule):\n"
        "    def __init__(self, width: int = 3) -> None:\n        super().__init__()\n"
    )
    return name


def _print_config(tmp_path: Path, module: str, *extra: str) -> int | str | None:
    config = tmp_path / "config.yaml"
    config.write_text(f"model:\n  class_path: {module}.Tiny\ndata:\n  url: sqlite:///{tmp_path / 'x.db'}\n")
    with pytest.raises(SystemExit) as exit_info:
        main([*extra, "fit", "--config", str(config), "--print_config"])
    return exit_info.value.code


def test_the_current_directory_is_imported_only_when_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    module = _write_model_module(project)
    monkeypatch.chdir(project)
    sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]  # as under the installed command

    assert _print_config(tmp_path, module) not in (0, None)  # a module lying in the current folder is not imported
    assert module in capsys.readouterr().err and str(project) not in sys.path

    assert _print_config(tmp_path, module, "--import-path", ".") in (0, None)
    assert f"class_path: {module}.Tiny" in capsys.readouterr().out
    assert sys.path[0] == str(project)


def test_the_import_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], run: Run) -> None:
    module = _write_model_module(tmp_path)
    monkeypatch.setenv(IMPORT_PATH_ENV, str(tmp_path))
    assert _print_config(tmp_path, module) in (0, None)
    assert f"class_path: {module}.Tiny" in capsys.readouterr().out
    code, _, err = run("--import-path", str(tmp_path / "missing"), "ls")
    assert code == 2 and err == f"error: --import-path {str(tmp_path / 'missing')!r}: not a folder\n"
