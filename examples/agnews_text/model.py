"""Text classification with a bag of embeddings, as in PyTorch's "Text classification with the torchtext library"
tutorial: ``nn.EmbeddingBag(vocab_size, 64, mode="mean")`` and one linear layer, trained with SGD (lr 5, gradient
norm clipped to 0.1 by the Trainer, learning rate divided by 10 when the validation accuracy stops improving).
Small data sets (Rotten Tomatoes: 3.9k training texts) do better with ``optimizer="adam"`` and ``lr=0.003``.

Batches come from :func:`examples.agnews_text.collate.collate_batch`: ``(text, offsets, labels)``.

The vocabulary size can be given, or read from the vocabulary table that ``lightning-dm8 import`` writes beside a
text data set (``<name>_vocab``, one row per token id): by default the table named after the DataModule's training
table (``agnews_train`` -> ``agnews_vocab``) in the DataModule's database.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from examples.classification import Classifier
from lightning_dm8 import DatasetTable
from lightning_dm8.db.urls import url_without_password


class TextClassificationModel(Classifier):
    """EmbeddingBag (mean of the token embeddings) + Linear.

    Args:
        num_classes: output classes (4 for AG News, 2 for Rotten Tomatoes).
        vocab_size: embedding rows; None reads it from ``vocab_table`` when training starts.
        vocab_table: the vocabulary dataset table; None derives it from the DataModule's training table.
        vocab_url: database holding ``vocab_table``; None uses the DataModule's (keep passwords out of it: set
            ``LIGHTNING_DM8_PASSWORD``).
        embed_dim: embedding size.
        optimizer: ``"sgd"`` (the tutorial's) or ``"adam"``.
        lr: learning rate.
        lr_factor: learning-rate factor applied when the validation accuracy did not improve in an epoch.
    """

    n_inputs = 2

    def __init__(
        self, num_classes: int = 4, vocab_size: int | None = None, vocab_table: str | None = None,
        vocab_url: str | None = None, embed_dim: int = 64, optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 5.0, lr_factor: float = 0.1,
    ) -> None:
        super().__init__(num_classes)
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
        self.vocab_url = vocab_url
        self.save_hyperparameters(ignore=["vocab_url"])
        self.hparams["vocab_url"] = url_without_password(vocab_url) if vocab_url else None
        self.embedding: nn.EmbeddingBag | None = None
        self.fc = nn.Linear(embed_dim, num_classes)
        if vocab_size is not None:
            self._build(vocab_size)

    def _build(self, vocab_size: int) -> None:
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be at least 1; got {vocab_size}")
        self.hparams["vocab_size"] = vocab_size  # saved with checkpoints, so they load without the database
        self.embedding = nn.EmbeddingBag(vocab_size, self.hparams.embed_dim, mode="mean")
        self.embedding.weight.data.uniform_(-0.5, 0.5)
        self.fc.weight.data.uniform_(-0.5, 0.5)
        self.fc.bias.data.zero_()

    def configure_model(self) -> None:
        """Size the embedding from the vocabulary table when no ``vocab_size`` was given."""
        if self.embedding is None:
            self._build(self._read_vocab_size())

    def _read_vocab_size(self) -> int:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        table = self.hparams.vocab_table
        if table is None:
            names = [t for t in getattr(datamodule, "tables", {}).values() if t]
            if not names:
                raise ValueError("TextClassificationModel needs vocab_size, or vocab_table (with a DM8DataModule "
                                 "or vocab_url to find it in)")
            table = names[0].rsplit("_", 1)[0] + "_vocab"
        source = self.vocab_url or getattr(datamodule, "db", None)
        if source is None:
            raise ValueError(f"TextClassificationModel cannot find vocabulary table {table!r}: give vocab_url "
                             f"or train with a DM8DataModule")
        return len(DatasetTable(source, table))

    def forward(self, text: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            raise RuntimeError("the embedding is not built yet: give vocab_size, or let the Trainer call "
                               "configure_model")
        return self.fc(self.embedding(text, offsets))

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer_class = torch.optim.SGD if self.hparams.optimizer == "sgd" else torch.optim.Adam
        optimizer = optimizer_class(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=self.hparams.lr_factor,
                                                               patience=0)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": "val_acc", "interval": "epoch", "strict": False}}
