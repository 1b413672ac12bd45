"""Helpers shared by the loading and DataModule tests: datasets whose labels are their row ids, epoch collection,
order statistics, and a recording LightningModule (importable, so spawned DDP processes can unpickle it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer

import lightning_dm8
from lightning_dm8.datamodule import DM8DataModule

FEATURE_DIM = 3


def spearman(order: np.ndarray) -> float:
    """Rank correlation between delivery position and row id (0 for a well shuffled order, 1 for sorted)."""
    ranks = np.empty(len(order), dtype=np.float64)
    ranks[np.argsort(order, kind="stable")] = np.arange(len(order))
    positions = np.arange(len(order), dtype=np.float64)
    return float(np.corrcoef(positions, ranks)[0, 1])


def features_for(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, FEATURE_DIM)).astype(np.float32)


def write_labelled(url: str, name: str, n: int, *, seed: int = 0, if_exists: str = "fail") -> np.ndarray:
    """A dataset of ``n`` rows whose label is the row id; returns the features written."""
    features = features_for(n, seed)
    lightning_dm8.write_arrays(url, name, features, np.arange(n), if_exists=if_exists, progress=False)
    return features


def make_dm(url: str, table: str, cache_dir: Any = None, **kwargs: Any) -> DM8DataModule:
    options = {"batch_size": 32, "block_size": 64, "num_workers": 0, "progress": False, **kwargs}
    return DM8DataModule(url, train_table=table, cache_dir=None if cache_dir is None else str(cache_dir), **options)


def quiet_trainer(**kwargs: Any) -> Trainer:
    """A CPU Trainer without logger, checkpoints, progress bar or model summary (unless asked for)."""
    options = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
               "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1, **kwargs}
    return Trainer(**options)


def epoch_batches(loader: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of ``(features, labels)`` batches as numpy arrays."""
    return [(x.numpy(), y.numpy()) for x, y in loader]


def epoch_ids(loader: Any) -> np.ndarray:
    return np.concatenate([labels for _, labels in epoch_batches(loader)])


def assert_exactly_once(ids: np.ndarray, n: int) -> None:
    counts = np.bincount(ids, minlength=n)
    assert len(counts) == n, f"row ids beyond {n - 1} delivered"
    missing, repeated = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
    assert not len(missing) and not len(repeated), f"missing {missing[:10]}, repeated {repeated[:10]}"


class RecordingModule(LightningModule):
    """A tiny linear model whose training steps record the labels (= row ids) they saw, per rank, in a file."""

    def __init__(self, out_dir: str | None = None, lr: float = 0.1) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.lr = lr
        self.layer = torch.nn.Linear(FEATURE_DIM, 1)
        self.seen: list[np.ndarray] = []
        self.losses: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        features, labels = batch
        self.seen.append(labels.detach().cpu().numpy().copy())
        loss = ((self.layer(features.float()).squeeze(-1) - labels.float() / 1000.0) ** 2).mean()
        self.losses.append(loss.detach().clone())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def on_train_end(self) -> None:
        if self.out_dir is None:
            return
        batches = np.array([len(s) for s in self.seen], dtype=np.int64)
        ids = np.concatenate(self.seen) if self.seen else np.zeros(0, dtype=np.int64)
        np.savez(Path(self.out_dir) / f"rank{self.global_rank}-{os.getpid()}.npz", ids=ids, batches=batches)


def read_rank_files(out_dir: Path) -> dict[int, dict[str, np.ndarray]]:
    found = {}
    for path in sorted(out_dir.glob("rank*.npz")):
        with np.load(path) as data:
            found[int(path.name[4:].split("-")[0])] = {"ids": data["ids"], "batches": data["batches"]}
    return found
