"""Retention: which checkpoints a run keeps, as a pure rule and with a real Trainer writing to the database."""

from __future__ import annotations

import datetime as dt

import pytest
import torch

from lightning_dm8.checkpoint import DM8Checkpoint, Retention, list_checkpoints
from lightning_dm8.checkpoint.policy import pick_best, versions_to_delete
from lightning_dm8.checkpoint.records import CheckpointInfo

from .tiny import TinyClassifier, loader, trainer


def _info(version: int, value: float | None, kind: str = "periodic", monitor: str | None = "loss") -> CheckpointInfo:
    return CheckpointInfo(
        run="r", version=version, name=f"v{version}", kind=kind, epoch=version, global_step=version,
        monitor=monitor, monitor_value=value, monitor_mode="min" if monitor else None,
        created_at=dt.datetime(2024, 1, 1), size_bytes=1, sha256="0" * 64, chunk_count=1, model_class=None,
        complete=True, data_version=version,
    )


def test_top_k_keeps_the_best_values_and_never_prunes_last_or_manual() -> None:
    infos = [_info(1, 0.5), _info(2, 0.3), _info(3, 0.4), _info(4, 0.2), _info(5, 0.2, "last"), _info(6, 9.0, "manual")]
    assert versions_to_delete(infos, Retention("loss", "min", save_top_k=2)) == [1, 3]
    assert versions_to_delete(infos, Retention("loss", "max", save_top_k=2)) == [2, 4]
    assert versions_to_delete(infos, Retention("loss", "min", save_top_k=-1)) == []
    assert versions_to_delete(infos, Retention("loss", "min", save_top_k=0)) == [1, 2, 3, 4]


def test_keep_last_n_adds_the_newest_to_the_best() -> None:
    infos = [_info(1, 0.5), _info(2, 0.1), _info(3, 0.4), _info(4, 0.3), _info(5, 0.6)]
    assert versions_to_delete(infos, Retention("loss", "min", save_top_k=1, keep_last_n=2)) == [1, 3]
    assert versions_to_delete(infos, Retention(None, save_top_k=0, keep_last_n=3)) == [1, 2]
    assert versions_to_delete(infos, Retention(None, save_top_k=1)) == [1, 2, 3, 4]


def test_best_ranks_missing_values_last_and_breaks_ties_to_the_older_version() -> None:
    assert pick_best([_info(1, None), _info(2, 0.4), _info(3, 0.4)]).version == 2
    assert pick_best([_info(1, 0.1, monitor=None), _info(2, 0.7, monitor=None)]).version == 2  # no monitor: latest
    assert pick_best([]) is None


def _fit_scripted(url: str, table: str, root, losses: list[float], **options) -> DM8Checkpoint:
    torch.manual_seed(0)
    callback = DM8Checkpoint(url, "ret", table=table, monitor="val_loss", **options)
    trainer(root, [callback], max_epochs=len(losses)).fit(
        TinyClassifier(val_losses=losses), loader(n=32), loader(n=16, seed=1)
    )
    return callback


def _kept(url: str, table: str) -> dict[str, list[int]]:
    kept: dict[str, list[int]] = {}
    for c in list_checkpoints(url, "ret", table=table):
        kept.setdefault(c.kind, []).append(c.epoch)
    return {kind: sorted(epochs) for kind, epochs in kept.items()}


def test_top_k_leaves_exactly_the_best_epochs(db_url: str, models: str, tmp_path) -> None:
    callback = _fit_scripted(db_url, models, tmp_path, [0.5, 0.3, 0.4, 0.2, 0.6], save_top_k=2)
    # periodic: the two lowest val_loss (epochs 3 and 1); `last` follows ModelCheckpoint, which refreshes it only
    # when a top-k checkpoint was saved at the same step (epoch 3 here)
    assert _kept(db_url, models) == {"periodic": [1, 3], "last": [3]}
    assert callback.best_model_path.endswith("epoch=3-step=8.ckpt")


def test_keep_last_n_leaves_the_best_and_the_newest(db_url: str, models: str, tmp_path) -> None:
    _fit_scripted(db_url, models, tmp_path, [0.5, 0.1, 0.4, 0.3, 0.6], save_top_k=1, keep_last_n=2, save_last=False)
    assert _kept(db_url, models) == {"periodic": [1, 3, 4]}


def test_keep_last_n_must_be_positive_and_link_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_last_n"):
        DM8Checkpoint("sqlite://", "r", keep_last_n=0)
    with pytest.raises(ValueError, match="'link'"):
        DM8Checkpoint("sqlite://", "r", save_last="link")  # type: ignore[arg-type]
