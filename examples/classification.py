"""The training, validation, test and predict steps the example classifiers share.

A batch is ``(*inputs, labels)``: ``(images, labels)`` for the image tables, ``(text, offsets, labels)`` from the
text collate function. The model's ``forward(*inputs)`` returns logits; the loss is cross-entropy. Loss and accuracy
are logged as ``{stage}_loss`` / ``{stage}_acc`` (training: per step and per epoch). The accuracy is a
``torchmetrics`` metric: it counts right answers and rows over the whole epoch and across DDP ranks, so an uneven
last batch or rank weighs exactly as many rows as it holds.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

STAGES = ("train", "val", "test")


class Classifier(LightningModule):
    """Base class of the example models; subclasses define ``forward`` and ``configure_optimizers``.

    ``n_inputs`` is how many leading batch elements ``forward`` takes (the rest is the label).
    """

    n_inputs = 1

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        # One metric per stage (a metric accumulates until its epoch is logged): "{stage}_acc".
        self.accuracy = nn.ModuleDict({f"{stage}_acc": MulticlassAccuracy(num_classes, average="micro")
                                       for stage in STAGES})

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        *inputs, labels = batch
        logits = self(*inputs)
        loss = F.cross_entropy(logits, labels)
        train = stage == "train"
        accuracy = self.accuracy[f"{stage}_acc"]
        accuracy(logits, labels)
        rows = len(labels)
        self.log(f"{stage}_loss", loss, prog_bar=True, on_step=train, on_epoch=True, batch_size=rows, sync_dist=True)
        self.log(f"{stage}_acc", accuracy, prog_bar=True, on_step=train, on_epoch=True, batch_size=rows)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Logits, for batches with or without labels (``DM8PredictionWriter`` stores the class and the scores)."""
        inputs = batch[: self.n_inputs] if isinstance(batch, (tuple, list)) else (batch,)
        return self(*inputs)
