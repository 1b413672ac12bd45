"""ResNet-20 for CIFAR-10 (He et al., "Deep Residual Learning for Image Recognition", section 4.2).

Three stages of three basic blocks with 16, 32 and 64 channels; a stage's first block halves the resolution
(stride 2) and doubles the channels. Shortcuts are identities; where the shape changes, option "A" (the paper's
CIFAR choice: subsample and zero-pad the channels, no parameters, 0.27M parameters in all) or option "B"
(a 1x1 convolution and batch norm). The model takes the uint8 images (B, 3, 32, 32) of a dataset table and
normalises them itself with the CIFAR-10 per-channel mean and standard deviation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from examples.classification import Classifier

#: Per-channel mean and standard deviation of the CIFAR-10 training images, on the 0..1 scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, plus the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if shortcut == "A":
                self.shortcut = _PadShortcut(out_channels - in_channels, stride)
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _PadShortcut(nn.Module):
    """Option A: take every ``stride``-th pixel and add zero channels, half before and half after."""

    def __init__(self, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = extra_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class ResNet20(Classifier):
    """ResNet-20 with SGD (momentum 0.9, weight decay 1e-4) and the paper's step schedule (lr / 10 at milestones).

    Args:
        num_classes: output classes.
        lr: initial learning rate (0.1 in the paper, for batch size 128).
        momentum, weight_decay: SGD settings.
        milestones: epochs after which the learning rate is divided by 10. The paper's 32k and 48k of 64k
            iterations at batch 128 on 45k images are epochs 91 and 136 of 182.
        shortcut: ``"A"`` (zero-padding identity, parameter-free) or ``"B"`` (1x1 projection).
    """

    def __init__(
        self, num_classes: int = 10, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4,
        milestones: list[int] | None = None, shortcut: str = "A",
    ) -> None:
        super().__init__(num_classes)
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero-padding) or 'B' (1x1 projection); got {shortcut!r}")
        self.save_hyperparameters()
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        stages, channels = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [BasicBlock(channels, width, stride, shortcut)]
            blocks += [BasicBlock(width, width, 1, shortcut) for _ in range(2)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum,
                                    weight_decay=self.hparams.weight_decay)
        milestones = self.hparams.milestones if self.hparams.milestones is not None else [91, 136]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
