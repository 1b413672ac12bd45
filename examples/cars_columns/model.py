"""Which region a car comes from, from a table of mixed columns: its name (text), five measurements (floats), its
cylinders and model year (ints). Data: the cars table that ``lightning-dm8 import cars`` writes (392 models,
1970-1982, from the ``vega_datasets`` package).

A batch is ``(columns, origin)``: ``columns["name"]`` is already a bag of hashed words (the per-column transform
:func:`name_words`, applied in the data loader), the numbers are one tensor per column. Each kind of column has its
own input layer: the words a linear layer, the measurements a batch norm of their logarithms, cylinders and year an
embedding each.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
from torch import nn

from examples.classification import Classifier

WORD_BUCKETS = 512
MEASUREMENTS = ("mpg", "displacement", "horsepower", "weight", "acceleration")
FIRST_YEAR = 1970


def name_words(name: str) -> torch.Tensor:
    """A car's name as a bag of words hashed into :data:`WORD_BUCKETS` counts (CRC-32: the same in every process,
    unlike Python's ``hash``): ``"toyota corolla"`` marks the buckets of ``toyota`` and ``corolla``."""
    counts = torch.zeros(WORD_BUCKETS)
    for word in name.lower().split():
        counts[zlib.crc32(word.encode("utf-8")) % WORD_BUCKETS] += 1.0
    return counts


class CarOriginModel(Classifier):
    """Words, measurements, cylinders and year, each through its own input layer, then a two-layer head.

    Args:
        num_classes: regions of origin (3: USA, Europe, Japan).
        hidden: width of the head.
        lr: Adam's learning rate.
    """

    def __init__(self, num_classes: int = 3, hidden: int = 64, lr: float = 0.01) -> None:
        super().__init__(num_classes)
        self.save_hyperparameters()
        self.words = nn.Linear(WORD_BUCKETS, hidden)
        self.measurements = nn.BatchNorm1d(len(MEASUREMENTS))
        self.cylinders = nn.Embedding(13, 8)  # 3..12 cylinders
        self.year = nn.Embedding(16, 8)  # 1970..1985
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden + len(MEASUREMENTS) + 16, hidden), nn.ReLU(),
                                  nn.Linear(hidden, num_classes))
        self.lr = lr

    def forward(self, columns: dict[str, Any]) -> torch.Tensor:
        measured = torch.stack([columns[c].float() for c in MEASUREMENTS], dim=1).clamp_min(1e-3).log()
        year = (columns["year"] - FIRST_YEAR).clamp(0, self.year.num_embeddings - 1)
        cylinders = columns["cylinders"].clamp(0, self.cylinders.num_embeddings - 1)
        inputs = [self.words(columns["name"]), self.measurements(measured), self.cylinders(cylinders),
                  self.year(year)]
        return self.head(torch.cat(inputs, dim=1))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)
