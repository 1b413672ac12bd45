"""What the Fabric and plain-PyTorch examples share: their options, a small classifier, and the record of the rows
each rank trained on."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightning_dm8 import DatasetTable


def options(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="database URL (the password in $LIGHTNING_DM8_PASSWORD)")
    parser.add_argument("--table", required=True, help="the training dataset table")
    parser.add_argument("--classes", type=int, default=10, help="number of classes (labels 0..classes-1)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--cache-dir", default="runs/without_trainer/cache")
    parser.add_argument("--seen", help="a folder: each rank saves the row ids (labels) it trained on, per epoch")
    return parser.parse_args()


def linear_classifier(url: str, table: str, classes: int) -> nn.Module:
    """A linear layer over the flattened features of ``table`` (their size read from its first row)."""
    features, _ = DatasetTable(url, table)[0]
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.asarray(features).size), classes))


def step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    features, labels = batch
    return nn.functional.cross_entropy(model(features.float()), labels)


def save_seen(folder: str | None, rank: int, epoch: int, labels: list[torch.Tensor]) -> None:
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        np.save(Path(folder) / f"rank{rank}-epoch{epoch}.npy", torch.cat(labels).numpy())
