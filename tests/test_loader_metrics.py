"""What a run shows about its data: per-step and per-epoch loader metrics through Lightning's logging (in
``trainer.callback_metrics``, the loggers and, when asked, the progress bar; monitorable), nothing printed into a
progress bar, and progress bars while a cold epoch fills the cache, an import reads its files and a checkpoint is
exported."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from loading.support import RecordingModule, epoch_ids, make_dm, quiet_trainer, write_labelled
from test_datamodule import MemoryLogger

from lightning_dm8 import DM8Checkpoint
from lightning_dm8.cli import main
from lightning_dm8.importers.pipeline import import_source

N_ROWS = 1003
STEP = ("rows_per_s", "cache_hit", "wait_share", "db_seconds")
EPOCH = ("rows_per_s", "cache_hit", "wait_share", "db_seconds", "queries")


class WithValidation(RecordingModule):
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        features, labels = batch
        self.log("val_loss", ((self.layer(features.float()).squeeze(-1) - labels.float() / 1000.0) ** 2).mean())


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    write_labelled(url, "rows", N_ROWS)
    return url


def test_loader_metrics_reach_callback_metrics_and_the_logger(url: str, tmp_path: Path) -> None:
    logger = MemoryLogger()
    dm = make_dm(url, "rows", tmp_path / "cache", val_table="rows")
    trainer = quiet_trainer(max_epochs=2, logger=logger, num_sanity_val_steps=0)  # (the val table is the same)
    trainer.fit(WithValidation(), datamodule=dm)
    metrics = trainer.callback_metrics
    for name in EPOCH:
        assert f"data/train_{name}" in metrics and f"data/val_{name}" in metrics
    for name in STEP:
        assert f"data/train_{name}_step" in metrics
    assert float(metrics["data/train_cache_hit"]) == 100.0 and float(metrics["data/train_queries"]) == 0.0
    assert float(metrics["data/train_rows_per_s"]) > 0 and 0.0 <= float(metrics["data/train_wait_share"]) <= 100.0
    epochs = [m for m in logger.metrics if "data/train_cache_hit" in m]
    assert [m["data/train_cache_hit"] for m in epochs] == [0.0, 100.0]  # cold (from the database), then warm
    assert epochs[0]["data/train_queries"] == 16 and epochs[0]["data/train_db_seconds"] > 0
    steps = [m for m in logger.metrics if "data/train_rows_per_s_step" in m]
    assert len(steps) == 2 * 32 and all(m["data/train_rows_per_s_step"] > 0 for m in steps)
    assert dm.epoch_stats["train"].rows == N_ROWS and dm.epoch_stats["train"].seconds > 0


def test_loader_metrics_can_be_monitored(url: str, tmp_path: Path) -> None:
    best = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="data/train_rows_per_s", mode="max")
    stop = EarlyStopping(monitor="data/train_wait_share", mode="min", patience=5, check_on_train_epoch_end=True)
    trainer = quiet_trainer(max_epochs=2, callbacks=[best, stop], enable_checkpointing=True)
    trainer.fit(RecordingModule(), datamodule=make_dm(url, "rows", tmp_path / "cache"))
    assert best.best_model_score is not None and float(best.best_model_score) > 0
    assert stop.best_score is not None


@pytest.mark.parametrize("shown", [True, False])
def test_the_progress_bar_shows_loader_metrics_when_asked(url: str, tmp_path: Path, shown: bool) -> None:
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(RecordingModule(), datamodule=make_dm(url, "rows", tmp_path / "cache", prog_bar_metrics=shown,
                                                      progress=True))
    bar = trainer.progress_bar_metrics
    assert ("data/train_rows_per_s_step" in bar) is shown and ("data/train_wait_share" in bar) is shown
    assert "data/train_db_seconds_step" not in bar
    assert bar["data/train_cache_filled"] == 100.0  # the cold epoch filled the cache (progress=True)


def test_no_loader_metrics_when_switched_off(url: str) -> None:
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(RecordingModule(), datamodule=make_dm(url, "rows", log_metrics=False))
    assert not [k for k in trainer.callback_metrics if k.startswith("data/")]


def test_the_epoch_summary_is_a_log_record_not_a_print(url: str, capsys: pytest.CaptureFixture[str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lightning_dm8"):
        quiet_trainer(max_epochs=1).fit(RecordingModule(), datamodule=make_dm(url, "rows"))
    out, err = capsys.readouterr()
    assert "train data" not in out + err
    (record,) = [r for r in caplog.records if r.getMessage().startswith("train data (rows)")]
    assert "rows_per_s=" in record.getMessage() and "queries=16" in record.getMessage()


def test_a_bar_while_a_cold_epoch_fills_the_cache(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loader = make_dm(url, "rows", tmp_path / "cache", progress=True).train_dataloader()  # no Trainer: a tqdm bar
    epoch_ids(loader)
    err = capsys.readouterr().err
    assert "filling the cache of 'rows'" in err and "16/16" in err
    epoch_ids(loader)  # warm: nothing to fill, no bar
    assert "filling the cache" not in capsys.readouterr().err


def test_a_bar_while_an_import_reads_its_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import_source("digits", f"sqlite:///{tmp_path / 'digits.db'}", "digits", limit=50)
    err = capsys.readouterr().err
    assert "reading digits" in err and "writing digits_train" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_while_a_checkpoint_exports(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quiet_trainer(max_epochs=1, callbacks=[DM8Checkpoint(url, run="bar")], enable_checkpointing=True).fit(
        RecordingModule(), datamodule=make_dm(url, "rows"))
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["checkpoints", "export", "--url", url, "bar", "latest", str(tmp_path / "bar.ckpt")]) == 0
    assert "exporting bar latest" in terminal.getvalue()
    assert torch.load(tmp_path / "bar.ckpt", weights_only=True)["global_step"] == 32
