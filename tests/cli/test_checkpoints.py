"""``lightning-dm8 checkpoints list|show|export|delete`` through the real entry point."""

from __future__ import annotations

import sys

import pytest
import torch

from lightning_dm8.checkpoint import DM8CheckpointIO, list_checkpoints

from .conftest import Run, Terminal


def _save_three(url: str, table: str) -> None:
    io_ = DM8CheckpointIO(url, table=table)
    for epoch in range(3):
        io_.save_checkpoint({"epoch": epoch, "hyper_parameters": {"lr": 0.1 * (epoch + 1)},
                             "state_dict": {"w": torch.full((4,), float(epoch))}}, f"dm8:cli:e{epoch}")
    io_.save_checkpoint({"epoch": 9}, "dm8:other:x")
    io_.db.dispose()


def test_list_prints_a_table_of_every_checkpoint(db_url: str, models: str, run: Run) -> None:
    _save_three(db_url, models)
    code, out, _ = run("checkpoints", "list", "--url", db_url, "--table", models)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:4] == ["run", "version", "name", "kind"]
    assert set(lines[1]) <= {"-", " "}
    assert [line.split()[:3] for line in lines[2:]] == [
        ["cli", "1", "e0"], ["cli", "2", "e1"], ["cli", "3", "e2"], ["other", "1", "x"]
    ]
    code, out, _ = run("checkpoints", "list", "--url", db_url, "--table", models, "other", "--all")
    assert code == 0 and out.splitlines()[0].endswith("status") and out.splitlines()[2].endswith("complete")


def test_show_export_and_delete(db_url: str, models: str, tmp_path, run: Run) -> None:
    _save_three(db_url, models)
    code, out, _ = run("checkpoints", "show", "--url", db_url, "--table", models, "cli", "2", "--hparams")
    fields = {line.split()[0]: line[len(line.split()[0]):].strip() for line in out.splitlines() if line[:1] != " "}
    assert code == 0
    assert fields["version"] == "2" and fields["ckpt_path"] == "dm8:cli:2" and fields["name"] == "e1"
    assert "  lr: 0.2" in out and "not loaded" not in out

    target = tmp_path / "out" / "e1.ckpt"
    code, out, _ = run("checkpoints", "export", "--url", db_url, "--table", models, "cli", "e1", str(target))
    assert code == 0 and "version 2" in out
    assert torch.equal(torch.load(target)["state_dict"]["w"], torch.full((4,), 1.0))

    code, out, _ = run("checkpoints", "delete", "--url", db_url, "--table", models, "cli", "1", "latest")
    assert code == 0 and "deleted 2" in out
    assert [c.version for c in list_checkpoints(db_url, "cli", table=models)] == [2]
    code, _, err = run("checkpoints", "delete", "--url", db_url, "--table", models, "cli")
    assert code == 2 and err.startswith("error: ") and "--all" in err
    code, out, _ = run("checkpoints", "delete", "--url", db_url, "--table", models, "cli", "--all", "--yes")
    assert code == 0 and list_checkpoints(db_url, "cli", table=models) == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_delete_all_asks_first_and_needs_yes_without_a_terminal(db_url: str, models: str, run: Run,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _save_three(db_url, models)
    code, out, err = run("checkpoints", "delete", "--url", db_url, "--table", models, "cli", "--all")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "no terminal to confirm it: pass --yes" in err and "Traceback" not in err
    assert len(list_checkpoints(db_url, "cli", table=models)) == 3

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, _ = run("checkpoints", "delete", "--url", db_url, "--table", models, "cli", "--all")
    assert code == 1 and "nothing deleted" in out and len(list_checkpoints(db_url, "cli", table=models)) == 3
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    code, out, _ = run("checkpoints", "delete", "--url", db_url, "--table", models, "cli", "--all")
    assert code == 0 and "deleted 3" in out and list_checkpoints(db_url, "cli", table=models) == []


def test_errors_are_one_line_with_the_password_masked(tmp_path, run: Run) -> None:
    url = "postgresql+psycopg://postgres:Sup3rSecretPw@127.0.0.1:1/test"
    code, out, err = run("checkpoints", "list", "--url", url)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "***" in err and "Sup3rSecretPw" not in err
    code, out, err = run("checkpoints", "show", "--url", f"sqlite:///{tmp_path / 'none.db'}", "nosuch")
    assert code == 1 and "nothing has been saved" in err
    assert not (tmp_path / "none.db").exists()  # reading never creates a database file
