"""A small CNN for 28x28 grey images (Fashion-MNIST, MNIST; 8x8 digits are upsampled)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from examples.classification import Classifier


class SmallCNN(Classifier):
    """Two conv blocks and a linear head; takes uint8 images straight from the dataset table."""

    def __init__(self, num_classes: int = 10, lr: float = 2e-3, image_size: int = 28) -> None:
        super().__init__(num_classes)
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
                                  nn.Linear(64, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div(255.0)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.shape[-1] != 28:
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
        return self.head(self.features((x - 0.5) / 0.5))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
