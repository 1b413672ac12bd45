"""Nothing stored runs: a checkpoint whose unpickling would create a file goes through every ``checkpoints``
command, and no file appears; ``show --hparams`` shows the planted object by name."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

from lightning_dm8.checkpoint import DM8CheckpointIO, list_checkpoints
from lightning_dm8.cli.hparams import NotLoaded, ReferenceUnpickler, read_hyperparameters

from .conftest import Run


class Planted:
    """Unpickling this opens (creates) ``path`` for writing: what an attacker with write access to the model table
    could store to run code in whoever loads the checkpoint."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


class RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def _plant(url: str, table: str, marker: Path) -> None:
    io_ = DM8CheckpointIO(url, table=table)
    io_.save_checkpoint({"epoch": 1, "hyper_parameters": {"lr": 0.1, "planted": Planted(str(marker))},
                         "callbacks": {"also": Planted(str(marker))}, "state_dict": {"w": torch.ones(2)}},
                        "dm8:evil:x")
    io_.db.dispose()
    assert not marker.exists()  # saving does not run it


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_checkpoint_command_runs_what_is_stored(db_url: str, models: str, tmp_path: Path, run: Run) -> None:
    marker = tmp_path / "pwned"
    _plant(db_url, models, marker)
    common = ("--url", db_url, "--table", models)

    code, out, _ = run("checkpoints", "list", *common)
    assert code == 0 and "evil" in out and not marker.exists()
    code, out, _ = run("checkpoints", "show", *common, "evil")
    assert code == 0 and "dm8:evil:1" in out and not marker.exists()

    code, out, err = run("checkpoints", "show", *common, "evil", "--hparams")
    assert code == 0 and err == "" and not marker.exists()
    assert "  lr: 0.1" in out
    assert f"  planted: <not loaded: io.open({str(marker)!r}, 'w')>" in out
    assert "note: 1 object(s) in the hyperparameters are stored as code references (io.open)" in out
    assert "nothing stored ran" in out

    exported = tmp_path / "evil.ckpt"
    code, _, _ = run("checkpoints", "export", *common, "evil", "latest", str(exported))
    assert code == 0 and exported.is_file() and not marker.exists()
    code, _, _ = run("checkpoints", "delete", *common, "evil", "--all", "--yes")
    assert code == 0 and list_checkpoints(db_url, "evil", table=models) == [] and not marker.exists()


def _torch_payload(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_the_reference_unpickler_calls_nothing_it_is_given(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = _torch_payload({"hyper_parameters": {
        "command": RunsCommand(f"touch {marker}"), "file": Planted(str(marker)),
        "ordered": OrderedDict(a=1), "raw": b"\x00\xffbytes", "nested": [{"s": {1, 2}}, (3, 4.5)],
        "tensor": torch.arange(3),
    }})
    hparams, refs = read_hyperparameters(payload)
    assert not marker.exists()
    assert isinstance(hparams["command"], NotLoaded)
    assert repr(hparams["command"]).startswith("<not loaded: posix.system")
    assert hparams["ordered"] == OrderedDict(a=1) and hparams["raw"] == b"\x00\xffbytes"
    assert hparams["nested"] == [{"s": {1, 2}}, (3, 4.5)]
    assert "posix.system" in refs and "io.open" in refs
    assert isinstance(hparams["tensor"], NotLoaded)  # tensors are not rebuilt either


def test_a_plain_pickle_of_exec_is_not_run() -> None:
    crafted = b"cbuiltins\nexec\n(Vraise SystemExit('ran')\ntR."  # protocol 0: builtins.exec("raise ...")
    result = ReferenceUnpickler(io.BytesIO(crafted)).load()
    assert isinstance(result, NotLoaded) and "builtins.exec" in repr(result)


def test_a_payload_that_is_not_a_torch_archive_is_refused() -> None:
    with pytest.raises(zipfile.BadZipFile):
        read_hyperparameters(pickle.dumps({"hyper_parameters": {}}))
