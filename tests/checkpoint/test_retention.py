"""Retention: which checkpoints a run keeps, as a pure rule and with a real Trainer writing to the database."""

from __future__ import annotations

import datetime as dt

import pytest
import torch

from lightning_dm8.checkpoint import DM8Checkpoint, Retention, list_checkpoints
from lightning_dm8.checkpoint.policy import pick_best, versions_to_delete
from lightning_dm8.checkpoint.records import CheckpointInfo
from lightning_dm8.errors import InvalidInputError

from .tiny import TinyClassifier, loader, trainer


def _info(
    version: int, value: float | None, kind: str = "periodic", monitor: str | None = "loss", mode: str = "min"
) -> CheckpointInfo:
    return CheckpointInfo(
        run="r", version=version, name=f"v{version}", kind=kind, epoch=version, global_step=version,
        monitor=monitor, monitor_value=value, monitor_mode=mode if monitor else None,
        created_at=dt.datetime(2024, 1, 1), size_bytes=1, sha256="0" * 64, chunk_count=1, model_class=None,
        complete=True, data_version=version,
    )


def test_top_k_keeps_the_best_values_and_never_prunes_last_or_manual() -> None:
    infos = [_info(1, 0.5), _info(2, 0.3), _info(3, 0.4), _info(4, 0.2), _info(5, 0.2, "last"), _info(6, 9.0, "manual")]
    assert versions_to_delete(infos, Retention("loss", "min", save_top_k=2)) == [1, 3]
    assert versions_to_delete(infos, Retention("loss", "min", save_top_k=-1)) == []
    assert versions_to_delete(infos, Retention("loss", "min", save_top_k=0)) == [1, 2, 3, 4]
    maximised = [_info(c.version, c.monitor_value, c.kind, mode="max") for c in infos]
    assert versions_to_delete(maximised, Retention("loss", "max", save_top_k=2)) == [2, 4]


def test_keep_last_n_adds_the_newest_to_the_best() -> None:
    infos = [_info(1, 0.5), _info(2, 0.1), _info(3, 0.4), _info(4, 0.3), _info(5, 0.6)]
    assert versions_to_delete(infos, Retention("loss", "min", save_top_k=1, keep_last_n=2)) == [1, 3]
    unmonitored = [_info(c.version, None, monitor=None) for c in infos]
    assert versions_to_delete(unmonitored, Retention(None, save_top_k=0, keep_last_n=3)) == [1, 2]
    assert versions_to_delete(unmonitored, Retention(None, save_top_k=1)) == [1, 2, 3, 4]


def test_a_policy_deletes_only_checkpoints_of_its_own_monitor_and_mode() -> None:
    """The reported fault: a policy on val_acc, top 2, deleted the checkpoints saved under val_loss."""
    infos = [
        _info(1, 0.5, monitor="val_loss"), _info(2, 0.3, monitor="val_loss"), _info(3, 0.4, monitor="val_loss"),
        _info(4, 0.6, monitor="val_acc", mode="max"), _info(5, 0.9, monitor="val_acc", mode="max"),
        _info(6, 0.7, monitor="val_acc", mode="max"), _info(7, 0.1, monitor="val_loss", mode="max"),
        _info(8, None, monitor=None),
    ]
    by_acc = Retention("val_acc", "max", save_top_k=2)
    by_loss = Retention("val_loss", "min", save_top_k=2)
    assert versions_to_delete(infos, by_acc) == [4]
    assert versions_to_delete(infos, by_loss) == [1]  # version 7 was ranked by "max": not this policy's
    assert versions_to_delete(infos, [by_acc, by_loss]) == [1, 4]
    assert versions_to_delete(infos, Retention(None, save_top_k=0)) == [8]
    # two policies owning the same checkpoints: one that keeps a version saves it from the other
    assert versions_to_delete(infos, [by_loss, Retention("val_loss", "min", save_top_k=3)]) == []


def test_retention_refuses_an_unknown_mode_and_impossible_counts() -> None:
    with pytest.raises(InvalidInputError, match=r"Retention: mode must be 'min' .* or 'max' .*; got 'maximum'"):
        Retention("val_acc", "maximum")
    with pytest.raises(InvalidInputError, match="save_top_k must be -1 .*; got -2"):
        Retention("val_acc", "max", save_top_k=-2)
    with pytest.raises(InvalidInputError, match="keep_last_n must be None or at least 1; got 0"):
        Retention(keep_last_n=0)


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
    with pytest.raises(InvalidInputError, match="keep_last_n must be None or at least 1; got 0"):
        DM8Checkpoint("sqlite://", "r", keep_last_n=0)
    with pytest.raises(InvalidInputError, match="'link'"):
        DM8Checkpoint("sqlite://", "r", save_last="link")  # type: ignore[arg-type]  # the refused value
    with pytest.raises(InvalidInputError, match=r"DM8Checkpoint: mode must be 'min' .* or 'max' .*; got 'maximum'"):
        DM8Checkpoint("sqlite://", "r", monitor="val_acc", mode="maximum")


class _TwoMetrics(TinyClassifier):
    """Logs a scripted ``val_loss`` and a scripted ``val_acc`` per epoch."""

    def __init__(self, losses: list[float], accuracies: list[float]) -> None:
        super().__init__(val_losses=losses)
        self.accuracies = accuracies

    def validation_step(self, batch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self.log("val_acc", torch.tensor(self.accuracies[self.current_epoch]))


def test_two_callbacks_on_one_run_each_keep_their_own_top_k(db_url: str, models: str, tmp_path) -> None:
    """The reported fault: a second DM8Checkpoint on the same run replaced the first one's policy, and either
    policy pruned the other's checkpoints."""
    losses = [0.5, 0.3, 0.4, 0.2, 0.6]  # best two (min): epochs 3 and 1
    accuracies = [0.6, 0.9, 0.8, 0.7, 0.95]  # best two (max): epochs 4 and 1
    by_loss = DM8Checkpoint(db_url, "ret", table=models, monitor="val_loss", mode="min", save_top_k=2)
    by_acc = DM8Checkpoint(db_url, "ret", table=models, monitor="val_acc", mode="max", save_top_k=2)
    torch.manual_seed(0)
    trainer(tmp_path, [by_loss, by_acc], max_epochs=len(losses)).fit(
        _TwoMetrics(losses, accuracies), loader(n=32), loader(n=16, seed=1)
    )
    kept: dict[tuple[str, str | None, str | None], list[int]] = {}
    for c in list_checkpoints(db_url, "ret", table=models):
        kept.setdefault((c.kind, c.monitor, c.monitor_mode), []).append(c.epoch)
    periodic = {key[1:]: sorted(epochs) for key, epochs in kept.items() if key[0] == "periodic"}
    assert periodic == {("val_loss", "min"): [1, 3], ("val_acc", "max"): [1, 4]}
    assert sorted(kept.get(("last", "val_loss", "min"), []) + kept.get(("last", "val_acc", "max"), [])) == [3, 4]
    assert by_loss.best_model_path.endswith("epoch=3-step=8.ckpt")
    assert by_acc.best_model_path.endswith("epoch=4-step=10.ckpt")
