"""DM8Checkpoint with a real Trainer: save while fitting, restore through ckpt_path in this and in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from lightning.pytorch.plugins.io import AsyncCheckpointIO

from lightning_dm8.checkpoint import (
    CheckpointNotFoundError,
    DM8Checkpoint,
    DM8CheckpointIO,
    InvalidCheckpointPathError,
    list_checkpoints,
    load_checkpoint,
)

from .tiny import TinyClassifier, loader, state_digest, trainer

SCRIPT = os.path.join(os.path.dirname(__file__), "restore_script.py")


def _fit(db_url: str, models: str, root, run: str = "run1", epochs: int = 2, **options) -> tuple[TinyClassifier, DM8Checkpoint]:
    torch.manual_seed(0)
    model = TinyClassifier()
    callback = DM8Checkpoint(db_url, run, table=models, monitor="val_loss", **options)
    trainer(root, [callback], max_epochs=epochs).fit(model, loader(), loader(seed=1))
    return model, callback


def test_restore_in_a_fresh_process_is_bit_identical(db_url: str, models: str, tmp_path) -> None:
    _, callback = _fit(db_url, models, tmp_path / "train")
    assert isinstance(callback.checkpoint_io, DM8CheckpointIO)
    assert not (tmp_path / "train" / "checkpoints").exists()  # nothing went to the file system

    best = load_checkpoint(db_url, "run1", "best", table=models)
    here = TinyClassifier()
    expected = trainer(tmp_path / "here", [DM8Checkpoint(db_url, "run1", table=models)]).test(
        here, loader(seed=2), ckpt_path="dm8:run1:best", verbose=False
    )
    assert state_digest(here.state_dict()) == state_digest(best["state_dict"])

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, SCRIPT, db_url, models, "run1", "dm8:run1:best", str(tmp_path / "fresh")],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert there["digest"] == state_digest(best["state_dict"])
    assert there["test_acc"] == pytest.approx(expected[0]["test_acc"], abs=0.0)


def test_best_is_the_lowest_monitored_value_and_matches_lightning(db_url: str, models: str, tmp_path) -> None:
    model, callback = _fit(db_url, models, tmp_path, epochs=3, save_top_k=2)
    infos = list_checkpoints(db_url, "run1", table=models)
    periodic = [c for c in infos if c.kind == "periodic"]
    assert len(periodic) == 2
    best = min(periodic, key=lambda c: c.monitor_value)
    assert callback.best_model_path.endswith(f"/{best.name}.ckpt")
    assert float(callback.best_model_score) == pytest.approx(best.monitor_value)
    assert load_checkpoint(db_url, "run1", "best", table=models)["global_step"] == best.global_step
    assert all(c.model_class and c.model_class.endswith("tiny.TinyClassifier") for c in infos)
    assert [c.version for c in infos] == sorted(c.version for c in infos)


def test_ckpt_path_best_in_the_same_process_loads_through_the_database(db_url: str, models: str, tmp_path) -> None:
    model, callback = _fit(db_url, models, tmp_path)
    assert callback.best_model_path.startswith(os.sep + "lightning_dm8")
    fitted = trainer(tmp_path, [callback])
    fitted.fit(model, loader(), loader(seed=1))  # already at max_epochs: only re-attaches the callback
    via_best = fitted.test(model, loader(seed=2), ckpt_path="best", verbose=False)
    via_db = fitted.test(model, loader(seed=2), ckpt_path="dm8:run1:best", verbose=False)
    assert via_best == via_db


def test_fit_resumes_from_latest_and_keeps_counting_versions(db_url: str, models: str, tmp_path) -> None:
    _fit(db_url, models, tmp_path, epochs=2)
    before = list_checkpoints(db_url, "run1", table=models)
    latest = load_checkpoint(db_url, "run1", "latest", table=models)
    model = TinyClassifier()
    callback = DM8Checkpoint(db_url, "run1", table=models, monitor="val_loss")
    resumed = trainer(tmp_path, [callback], max_epochs=3)
    resumed.fit(model, loader(), loader(seed=1), ckpt_path="dm8:run1:latest")
    assert resumed.current_epoch == 3
    assert resumed.global_step == latest["global_step"] + 6  # one more epoch of 96/16 batches
    after = list_checkpoints(db_url, "run1", table=models)
    assert min(c.version for c in after) > 0
    assert max(c.version for c in after) > max(c.version for c in before)
    assert load_checkpoint(db_url, "run1", "last", table=models)["epoch"] == 2


def test_bad_and_missing_ckpt_paths_fail_clearly_through_the_trainer(db_url: str, models: str, tmp_path) -> None:
    _fit(db_url, models, tmp_path, epochs=1)
    for bad in ("dm8:run1", "dm8::best", "dm8:run1:", "dm8:a/b:best"):
        with pytest.raises(InvalidCheckpointPathError, match="dm8:"):
            trainer(tmp_path, [DM8Checkpoint(db_url, "run1", table=models)]).test(
                TinyClassifier(), loader(seed=2), ckpt_path=bad, verbose=False
            )
    with pytest.raises(CheckpointNotFoundError, match="'nosuch'.*runs with checkpoints: run1"):
        trainer(tmp_path, [DM8Checkpoint(db_url, "run1", table=models)]).test(
            TinyClassifier(), loader(seed=2), ckpt_path="dm8:nosuch:best", verbose=False
        )
    with pytest.raises(CheckpointNotFoundError, match="run 'run1' has no version 99"):
        trainer(tmp_path, [DM8Checkpoint(db_url, "run1", table=models)]).test(
            TinyClassifier(), loader(seed=2), ckpt_path="dm8:run1:99", verbose=False
        )


def test_async_checkpoint_io_keeps_saving_to_the_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'async.db'}"
    torch.manual_seed(0)
    model = TinyClassifier()
    callback = DM8Checkpoint(url, "async", monitor="val_loss", save_top_k=-1)
    fitted = trainer(tmp_path, [callback], max_epochs=3, plugins=[AsyncCheckpointIO()])
    assert isinstance(fitted.strategy.checkpoint_io, AsyncCheckpointIO)
    fitted.fit(model, loader(), loader(seed=1))
    assert isinstance(fitted.strategy.checkpoint_io, AsyncCheckpointIO)
    assert fitted.strategy.checkpoint_io.checkpoint_io is callback.checkpoint_io
    infos = list_checkpoints(url, "async")
    assert sorted(c.epoch for c in infos if c.kind == "periodic") == [0, 1, 2]
    final = load_checkpoint(url, "async", "latest")
    assert state_digest(final["state_dict"]) == state_digest(model.state_dict())
