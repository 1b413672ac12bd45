"""DM8Checkpoint with a real Trainer: save while fitting, restore through ckpt_path in this and in a fresh process."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from ldm8_backends import MODEL_IN_PROCESS
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


def _fit(
    db_url: str, models: str, root, run: str = "run1", epochs: int = 2, **options
) -> tuple[TinyClassifier, DM8Checkpoint]:
    torch.manual_seed(0)
    model = TinyClassifier()
    callback = DM8Checkpoint(db_url, run, table=models, monitor="val_loss", **options)
    trainer(root, [callback], max_epochs=epochs).fit(model, loader(), loader(seed=1))
    return model, callback


@pytest.fixture(scope="module")
def fresh_process() -> Iterator[subprocess.Popen]:
    """One new Python process for the whole module (starting Lightning costs seconds): it restores from the
    database only, so it has never seen a trained model."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen(
        [sys.executable, SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline() or "{}")
    assert ready.get("ready") == process.pid
    yield process
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=60)


def _restore_there(process: subprocess.Popen, **request: str) -> dict:
    assert process.stdin is not None and process.stdout is not None  # both opened as pipes
    process.stdin.write(json.dumps(request) + "\n")
    process.stdin.flush()
    reply = json.loads(process.stdout.readline())
    assert "error" not in reply, reply.get("error")
    return reply


@pytest.mark.requires_real_dm8(MODEL_IN_PROCESS)
def test_restore_in_a_fresh_process_is_bit_identical(db_url: str, models: str, tmp_path, fresh_process) -> None:
    _, callback = _fit(db_url, models, tmp_path / "train")
    assert isinstance(callback.checkpoint_io, DM8CheckpointIO)
    assert not (tmp_path / "train" / "checkpoints").exists()  # nothing went to the file system

    best = load_checkpoint(db_url, "run1", "best", table=models)
    here = TinyClassifier()
    expected = trainer(tmp_path / "here", [DM8Checkpoint(db_url, "run1", table=models)]).test(
        here, loader(seed=2), ckpt_path="dm8:run1:best", verbose=False
    )
    assert state_digest(here.state_dict()) == state_digest(best["state_dict"])

    there = _restore_there(
        fresh_process, url=db_url, table=models, run="run1", ckpt_path="dm8:run1:best", root=str(tmp_path / "fresh")
    )
    assert there["pid"] != os.getpid()
    assert there["digest"] == state_digest(best["state_dict"])
    assert there["test_acc"] == expected[0]["test_acc"]


def test_best_is_the_lowest_monitored_value_and_matches_lightning(db_url: str, models: str, tmp_path) -> None:
    model, callback = _fit(db_url, models, tmp_path, epochs=3, save_top_k=2)
    infos = list_checkpoints(db_url, "run1", table=models)
    periodic = [c for c in infos if c.kind == "periodic"]
    assert len(periodic) == 2
    best = min(periodic, key=lambda c: c.monitor_value)
    assert callback.best_model_path.endswith(f"/{best.name}.ckpt")
    assert float(callback.best_model_score) == pytest.approx(best.monitor_value)
    assert load_checkpoint(db_url, "run1", "best", table=models)["global_step"] == best.global_step
    # Lightning's own "best" resolves to the virtual path, which the IO maps to the same row
    assert callback.best_model_path.startswith(os.sep + "lightning_dm8")
    again = trainer(tmp_path, [callback], max_epochs=3)
    via_best = again.test(model, loader(seed=2), ckpt_path="best", verbose=False)
    via_db = again.test(model, loader(seed=2), ckpt_path="dm8:run1:best", verbose=False)
    assert via_best == via_db
    # validate and predict restore the same way
    validated = again.validate(TinyClassifier(), loader(seed=1), ckpt_path="dm8:run1:best", verbose=False)
    assert validated[0]["val_loss"] == pytest.approx(best.monitor_value, rel=1e-6)
    predicted = again.predict(TinyClassifier(), loader(seed=2), ckpt_path=f"dm8:run1:{best.version}")
    reference = TinyClassifier()
    reference.load_state_dict(load_checkpoint(db_url, "run1", best.version, table=models)["state_dict"])
    assert torch.equal(torch.cat(predicted), reference(torch.cat([b[0] for b in loader(seed=2)])).detach())
    assert all(c.model_class and c.model_class.endswith("tiny.TinyClassifier") for c in infos)
    assert [c.version for c in infos] == sorted(c.version for c in infos)


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
    clone = pickle.loads(pickle.dumps(callback))  # DDP spawn pickles callbacks: the IO comes back unconnected
    assert clone.checkpoint_io.db._engine.peek() is None
    assert clone.checkpoint_io._handles.peek() is None  # stores and locks are opened again where it runs
    assert [c.version for c in clone.checkpoint_io.store().infos("async")] == [c.version for c in infos]
