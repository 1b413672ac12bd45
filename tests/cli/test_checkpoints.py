"""``checkpoints list|show|export|delete`` driven through argparse, as ``lightning-dm8`` will."""

from __future__ import annotations

import argparse
import io

import torch

from lightning_dm8.checkpoint import DM8CheckpointIO, list_checkpoints
from lightning_dm8.checkpoint.commands import add_checkpoint_commands, format_table, run_checkpoint_command


def _run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="lightning-dm8")
    add_checkpoint_commands(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    code = run_checkpoint_command(parser.parse_args(list(argv)), out, err)
    return code, out.getvalue(), err.getvalue()


def _save_three(url: str, table: str) -> None:
    io_ = DM8CheckpointIO(url, table=table)
    for epoch in range(3):
        io_.save_checkpoint({"epoch": epoch, "hyper_parameters": {"lr": 0.1 * (epoch + 1)},
                             "state_dict": {"w": torch.full((4,), float(epoch))}}, f"dm8:cli:e{epoch}")
    io_.save_checkpoint({"epoch": 9}, "dm8:other:x")


def test_list_prints_a_table_of_every_checkpoint(db_url: str, models: str) -> None:
    _save_three(db_url, models)
    code, out, _ = _run("checkpoints", "list", "--url", db_url, "--table", models)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:4] == ["run", "version", "name", "kind"]
    assert set(lines[1]) <= {"-", " "}
    assert [line.split()[:3] for line in lines[2:]] == [
        ["cli", "1", "e0"], ["cli", "2", "e1"], ["cli", "3", "e2"], ["other", "1", "x"]
    ]
    code, out, _ = _run("checkpoints", "list", "--url", db_url, "--table", models, "other", "--all")
    assert code == 0 and out.splitlines()[0].endswith("status") and out.splitlines()[2].endswith("complete")


def test_show_export_and_delete(db_url: str, models: str, tmp_path) -> None:
    _save_three(db_url, models)
    code, out, _ = _run("checkpoints", "show", "--url", db_url, "--table", models, "cli", "2", "--hparams")
    fields = {line.split()[0]: line[len(line.split()[0]):].strip() for line in out.splitlines() if line[:1] != " "}
    assert code == 0
    assert fields["version"] == "2" and fields["ckpt_path"] == "dm8:cli:2" and fields["name"] == "e1"
    assert "  lr: 0.2" in out

    target = tmp_path / "out" / "e1.ckpt"
    code, out, _ = _run("checkpoints", "export", "--url", db_url, "--table", models, "cli", "e1", str(target))
    assert code == 0 and "version 2" in out
    assert torch.equal(torch.load(target)["state_dict"]["w"], torch.full((4,), 1.0))

    code, out, _ = _run("checkpoints", "delete", "--url", db_url, "--table", models, "cli", "1", "latest")
    assert code == 0 and "deleted 2" in out
    assert [c.version for c in list_checkpoints(db_url, "cli", table=models)] == [2]
    code, _, err = _run("checkpoints", "delete", "--url", db_url, "--table", models, "cli")
    assert code == 2 and "--all" in err
    code, out, _ = _run("checkpoints", "delete", "--url", db_url, "--table", models, "cli", "--all")
    assert code == 0 and list_checkpoints(db_url, "cli", table=models) == []


def test_errors_are_printed_with_the_password_masked(tmp_path) -> None:
    url = "postgresql+psycopg://postgres:Sup3rSecretPw@127.0.0.1:1/test"
    code, out, err = _run("checkpoints", "list", "--url", url)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and "***" in err and "Sup3rSecretPw" not in err
    code, _, err = _run("checkpoints", "show", "--url", f"sqlite:///{tmp_path / 'none.db'}", "nosuch")
    assert code == 1 and "nothing has been saved" in err


def test_format_table_pads_columns() -> None:
    assert format_table(("a", "bb"), [("xyz", "1")]).splitlines() == ["a    bb", "---  --", "xyz  1"]
