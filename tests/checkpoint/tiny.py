"""A small, deterministic classifier and data for the checkpoint tests (also imported by the subprocess scripts)."""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

FEATURES = 8
CLASSES = 3


def quiet_lightning() -> None:
    """Silence Lightning's advice about worker counts and such, which says nothing about the code under test."""
    warnings.filterwarnings("ignore", module="lightning")
    for name in ("lightning.pytorch", "lightning.fabric"):
        import logging

        logging.getLogger(name).setLevel(logging.ERROR)


def make_data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def loader(n: int = 96, seed: int = 0, batch_size: int = 16) -> DataLoader:
    x, y = make_data(n, seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


class TinyClassifier(pl.LightningModule):
    """Linear-ReLU-linear; logs ``val_loss`` (a scripted sequence when ``val_losses`` is given) and ``test_acc``."""

    def __init__(self, hidden: int = 16, lr: float = 0.1, note: str = "", val_losses: list[float] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        scripted = self.hparams.val_losses
        if scripted:
            loss = torch.tensor(scripted[self.current_epoch % len(scripted)])
        self.log("val_loss", loss)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_acc", (self(x).argmax(1) == y).float().mean())

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of every tensor: equal only for bit-identical weights."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def trainer(root: Any, callbacks: list[Any], max_epochs: int = 2, **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=str(root), callbacks=callbacks, deterministic=True, **kwargs,
    )
