"""Nothing stored in the model table runs, and nothing read from it is trusted blindly.

Each test plays someone with write access to the model table (or a user passing a wrong option) and shows that the
attempt now fails with a clear error and does no harm.
"""

from __future__ import annotations

import io
import pathlib
import warnings
from typing import Any

import pytest
import sqlalchemy as sa
import torch

from lightning_dm8.checkpoint import (
    CheckpointCorruptError,
    DM8Checkpoint,
    DM8CheckpointIO,
    delete_checkpoints,
    list_checkpoints,
    load_checkpoint,
)
from lightning_dm8.checkpoint.errors import UnsafeCheckpointError, UnsafeLoadWarning
from lightning_dm8.checkpoint.records import CheckpointMeta
from lightning_dm8.checkpoint.store import CheckpointStore
from lightning_dm8.datamodule import DM8DataModule
from lightning_dm8.errors import InvalidInputError

from .tiny import TinyClassifier, loader, trainer


class _TouchOnLoad:
    """Unpickling this calls ``Path.touch``: the stand-in for any command an attacker would run."""

    def __init__(self, target: pathlib.Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.target,))


class Note:
    """A harmless object that ``weights_only=True`` does not rebuild (any class of the user's own)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _checkpoint_bytes(extra: Any) -> bytes:
    """A complete Lightning checkpoint of TinyClassifier with ``extra`` among its hyperparameters."""
    model = TinyClassifier()
    checkpoint = {
        "epoch": 0, "global_step": 1, "pytorch-lightning_version": "2.6.0", "state_dict": model.state_dict(),
        "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [],
        "hyper_parameters": {**model.hparams, "extra": extra},
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def _plant(url: str, table: str, run: str, extra: Any) -> None:
    """Write a checkpoint straight into the model table, as anyone who can write that table could."""
    meta = CheckpointMeta(name="planted", kind="manual", epoch=0, global_step=1)
    CheckpointStore(url, table).save(run, _checkpoint_bytes(extra), meta)


_REFUSED = r"checkpoint 'evil' version 1 in model table .* was not loaded: it holds an object that only running code"


def test_a_planted_checkpoint_runs_nothing_through_any_load(db_url: str, models: str, tmp_path, monkeypatch) -> None:
    # torch >= 2.6 defaults to weights_only=True unless told otherwise; loads from the database do not depend on it
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    target = tmp_path / "created-by-unpickling"
    _plant(db_url, models, "evil", _TouchOnLoad(target))

    with pytest.raises(UnsafeCheckpointError, match=_REFUSED) as caught:
        load_checkpoint(db_url, "evil", table=models)
    message = str(caught.value)
    assert "Unsupported global" in message and "weights_only=False" in message and "add_safe_globals" in message

    with pytest.raises(UnsafeCheckpointError, match=_REFUSED):
        DM8CheckpointIO(db_url, table=models).load_checkpoint("dm8:evil:latest")
    with pytest.raises(UnsafeCheckpointError, match=_REFUSED):
        DM8CheckpointIO(db_url, table=models).load_checkpoint("dm8:evil:planted", weights_only=True)

    for stage in ("fit", "validate", "test", "predict"):
        callback = DM8Checkpoint(db_url, "evil", table=models)
        run = getattr(trainer(tmp_path, [callback], max_epochs=1), stage)
        data = {"fit": "train_dataloaders"}.get(stage, "dataloaders")
        with pytest.raises(UnsafeCheckpointError, match=_REFUSED):
            run(TinyClassifier(), ckpt_path="dm8:evil:latest", **{data: loader(n=16)})

    assert not target.exists()


def test_a_trusted_checkpoint_loads_with_weights_only_false_and_a_warning(db_url: str, models: str) -> None:
    _plant(db_url, models, "mine", Note("saved by me"))
    with pytest.raises(UnsafeCheckpointError, match=r"Unsupported global: GLOBAL .*Note"):
        load_checkpoint(db_url, "mine", table=models)

    opt_out = r"loading checkpoint 'mine' version 1 .* with weights_only=False: unpickling it can run any code"
    with pytest.warns(UnsafeLoadWarning, match=opt_out):
        checkpoint = load_checkpoint(db_url, "mine", table=models, weights_only=False)
    assert checkpoint["hyper_parameters"]["extra"].text == "saved by me"
    with pytest.warns(UnsafeLoadWarning, match=opt_out):
        checkpoint = DM8CheckpointIO(db_url, table=models).load_checkpoint("dm8:mine:latest", weights_only=False)
    assert checkpoint["hyper_parameters"]["extra"].text == "saved by me"


def test_checkpoints_saved_by_training_load_with_weights_only(db_url: str, models: str, tmp_path) -> None:
    """What the project saves itself is plain data: the safe default loads it without a warning."""
    callback = DM8Checkpoint(db_url, "plain", table=models, monitor="val_loss")
    trainer(tmp_path, [callback], max_epochs=1).fit(TinyClassifier(), loader(n=32), loader(n=16, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsafeLoadWarning)
        checkpoint = load_checkpoint(db_url, "plain", "best", table=models)
        trainer(tmp_path, [DM8Checkpoint(db_url, "plain", table=models)]).test(
            TinyClassifier(), loader(n=16), ckpt_path="dm8:plain:best"
        )
    assert set(checkpoint["state_dict"]) == set(TinyClassifier().state_dict())


def _set_header(store: CheckpointStore, run: str, **values: Any) -> None:
    header = store.tables.header
    with store.db.begin("tamper with a header") as conn:
        conn.execute(header.update().where(header.c.run == run).values(**values))


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"size_bytes": 10**15}, r"it claims 1000000000000000 bytes, more than the 1099511627776 bytes a checkpoint"),
        ({"size_bytes": 10**15, "chunk_count": 10**6}, r"it claims 1000000000000000 bytes, more than the"),
        ({"size_bytes": 10**11}, r"100000000000 bytes cannot fill 1 chunks"),
        ({"size_bytes": -1}, r"it records -1 bytes in 1 chunks"),
        ({"chunk_count": 10**6}, r"\d+ bytes cannot fill 1000000 chunks"),
        ({"data_version": 7}, r"version 1 with its bytes in version 7"),
    ],
)
def test_a_header_claiming_an_impossible_size_is_refused_before_any_buffer(
    db_url: str, models: str, values: dict[str, int], problem: str
) -> None:
    """The reported fault: the recorded size was allocated before it was checked (10**15 bytes: MemoryError)."""
    store = CheckpointStore(db_url, models)
    store.save("r", b"x" * 100, CheckpointMeta(name="a", kind="periodic"))
    _set_header(store, "r", **values)
    corrupt = rf"the header row of checkpoint 'r' version 1 is corrupt: {problem}.*\. Nothing of it is read"
    with pytest.raises(CheckpointCorruptError, match=corrupt) as caught:
        load_checkpoint(db_url, "r", table=models)
    assert "lightning-dm8 checkpoints delete r 1" in str(caught.value)
    with pytest.raises(CheckpointCorruptError, match=corrupt):
        DM8CheckpointIO(db_url, table=models).load_checkpoint("dm8:r:latest")
    with pytest.raises(CheckpointCorruptError, match=corrupt):
        list_checkpoints(db_url, "r", table=models)
    # what the message says to do works: the row goes by its number
    assert delete_checkpoints(db_url, "r", [1], table=models) == 1
    assert list_checkpoints(db_url, "r", table=models) == []


def test_a_model_table_name_with_a_percent_sign_works(db_url: str, table_name: str, tmp_path) -> None:
    """The reported fault: a ``%`` in the model table's name broke its creation on PostgreSQL."""
    table = f"{table_name}_m%odel"
    callback = DM8Checkpoint(db_url, "pct", table=table, monitor="val_loss")
    trainer(tmp_path, [callback], max_epochs=1).fit(TinyClassifier(), loader(n=32), loader(n=16, seed=1))
    assert {c.kind for c in list_checkpoints(db_url, "pct", table=table)} == {"periodic", "last"}
    checkpoint = load_checkpoint(db_url, "pct", "best", table=table)
    assert set(checkpoint["state_dict"]) == set(TinyClassifier().state_dict())
    with CheckpointStore(db_url, table).db.connect() as conn:
        assert {table, f"{table}_chunks"} <= set(sa.inspect(conn).get_table_names())


def test_enumerated_options_are_refused_with_the_choices_named() -> None:
    """The reported fault: an unknown ``cache_on_full`` behaved like "skip"."""
    with pytest.raises(InvalidInputError, match=r"cache_on_full must be one of 'error', 'skip' .*; got 'skp'"):
        DM8DataModule("sqlite://", train_table="t", cache_on_full="skp")  # type: ignore[arg-type]  # the refused value
    with pytest.raises(InvalidInputError, match=r"DM8Checkpoint: mode must be 'min' .* or 'max' .*; got 'MAX'"):
        DM8Checkpoint("sqlite://", "r", monitor="val_acc", mode="MAX")
