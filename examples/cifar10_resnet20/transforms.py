"""Per-sample training augmentation for CIFAR-10: random crop with 4-pixel zero padding, then a random horizontal
flip (the augmentation of He et al.), on the uint8 (3, 32, 32) arrays a dataset table holds.

``DM8DataModule(train_transform="examples.cifar10_resnet20.transforms.random_crop_flip")`` applies it to every
training sample in the process that loads it (the training process, or each DataLoader worker).

Randomness comes from torch's generator in the process that runs the transform, three numbers per sample. Torch
seeds every DataLoader worker on its own (base seed + worker id, the base drawn from the seeded main process), so
a run with a fixed seed (``seed_everything``) sees the same crops and flips again, each worker and each epoch
draws differently, and calling ``torch.manual_seed(s)`` again restarts the same sequence. ``RandomCropFlip(seed=s)``
uses a private numpy generator instead, seeded from ``s``, the worker id and the DDP rank.
"""

from __future__ import annotations

import os

import numpy as np
import torch


class RandomCropFlip:
    """Pad by ``padding`` zero pixels on each side, crop back to the input size at a random offset, and flip left
    to right with probability ``flip_p``.

    Args:
        padding: zero pixels added on each side before cropping.
        flip_p: probability of a horizontal flip.
        seed: None draws from torch's generator (seeded per process and worker); an int uses a numpy generator of
            this instance, seeded from it, the DataLoader worker id and the DDP rank.
    """

    def __init__(self, padding: int = 4, flip_p: float = 0.5, seed: int | None = None) -> None:
        if padding < 0 or not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"padding must be >= 0 and flip_p in [0, 1]; got {padding}, {flip_p}")
        self.padding, self.flip_p, self.seed = padding, flip_p, seed
        self._key: tuple[int, ...] | None = None
        self._rng: np.random.Generator | None = None

    def _draw(self) -> list[float]:
        """Three uniform numbers in [0, 1): the crop's top and left offsets and the flip."""
        if self.seed is None:
            return torch.rand(3, dtype=torch.float64).tolist()
        worker = torch.utils.data.get_worker_info()
        rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
        key = (os.getpid(), 0 if worker is None else worker.id, rank)
        if self._rng is None or key != self._key:  # a new process or worker starts the stream that belongs to it
            self._key = key
            self._rng = np.random.default_rng([self.seed, key[1], rank])
        return self._rng.random(3).tolist()

    def __call__(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """``image`` (C, H, W) or (H, W), any dtype; returns a new array of the same shape and dtype."""
        array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.ndim not in (2, 3):
            raise ValueError(f"random_crop_flip expects (C, H, W) or (H, W) images; got shape {array.shape}")
        top, left, flip = self._draw()
        p = self.padding
        height, width = array.shape[-2:]
        # Crop offset (dy, dx) in the padded image is (top, left) in 0..2p; copy the overlap into zeros (no np.pad).
        dy, dx = int(top * (2 * p + 1)) - p, int(left * (2 * p + 1)) - p
        out = np.zeros_like(array)
        src_y, dst_y = slice(max(dy, 0), height + min(dy, 0)), slice(max(-dy, 0), height - max(dy, 0))
        src_x, dst_x = slice(max(dx, 0), width + min(dx, 0)), slice(max(-dx, 0), width - max(dx, 0))
        out[..., dst_y, dst_x] = array[..., src_y, src_x]
        if flip < self.flip_p:
            out = np.ascontiguousarray(out[..., ::-1])
        return out


_DEFAULT = RandomCropFlip()


def random_crop_flip(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """:class:`RandomCropFlip` with 4-pixel padding and flip probability 0.5, drawing from torch's generator."""
    return _DEFAULT(image)
