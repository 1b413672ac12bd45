"""Turning a block of rows into what a training step receives.

With no per-sample transform and no collate function, a batch is built from whole arrays at once — no
per-sample Python work — which is where most of a DataLoader's time usually goes.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from lightning_dm8.tables.block import Block
from lightning_dm8.tables.ragged import Ragged

Hook = Callable[..., Any] | str | None


def resolve_callable(hook: Hook, what: str) -> Callable[..., Any] | None:
    """A callable given directly or as an importable dotted path ``"package.module.name"`` (from YAML)."""
    if hook is None or callable(hook):
        return hook
    module_name, _, attribute = str(hook).rpartition(".")
    if not module_name:
        raise ValueError(f"{what} {hook!r} is not an importable path; write it as 'package.module.function'")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{what} {hook!r} cannot be imported ({exc}); check the module path and the name") from exc
    if not callable(found):
        raise ValueError(f"{what} {hook!r} is not callable")
    return found


class RaggedBatch(list):
    """The feature tensors of a batch of variable-length rows: a plain list of 1-D tensors, except when pickled.

    A DataLoader worker hands its batch to the main process by pickling it, and torch moves every tensor into a
    shared-memory file of its own: one file (and file descriptor) per row, about a millisecond each. Pickled, this
    list sends one flat tensor and the lengths instead; unpickled, it is again a list of 1-D tensors with the same
    values (views of that one tensor).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        if not self or any(not isinstance(t, torch.Tensor) or t.dim() != 1 or t.dtype != self[0].dtype for t in self):
            return (RaggedBatch, (list(self),))
        return (_ragged_from_flat, (torch.cat(list(self)), [int(t.shape[0]) for t in self]))


def _ragged_from_flat(flat: torch.Tensor, lengths: list[int]) -> RaggedBatch:
    return RaggedBatch(torch.split(flat, lengths))


class _OneStoragePair(tuple):
    """A ``(features, labels)`` batch on its way from a DataLoader worker to the main process.

    torch hands each tensor over in a shared-memory segment of its own, passing its file descriptor through a
    connection that is set up and authenticated for every tensor: two of them per batch, more work than copying the
    batch. Pickled, this pair sends one segment holding both tensors; unpickled, it is a plain tuple of the two
    tensors (views of that segment).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        features, labels = self
        size = features.numel() * features.element_size()
        start = -(-size // 16) * 16  # the labels' offset, aligned for any dtype
        segment = torch.empty(start + labels.numel() * labels.element_size(), dtype=torch.uint8).share_memory_()
        _view(segment, 0, features.dtype, features.shape).copy_(features)
        _view(segment, start, labels.dtype, labels.shape).copy_(labels)
        return (_pair_from_segment, (segment, features.dtype, tuple(features.shape), start, labels.dtype,
                                     tuple(labels.shape)))


def _view(segment: torch.Tensor, start: int, dtype: torch.dtype, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    count = math.prod(shape)
    return segment[start : start + count * dtype.itemsize].view(dtype).view(shape)


def _pair_from_segment(segment: torch.Tensor, features_dtype: torch.dtype, features_shape: tuple[int, ...],
                       start: int, labels_dtype: torch.dtype, labels_shape: tuple[int, ...]) -> tuple[Any, Any]:
    return (_view(segment, 0, features_dtype, features_shape), _view(segment, start, labels_dtype, labels_shape))


def for_transfer(batch: Any) -> Any:
    """``batch`` ready to leave a DataLoader worker: a ``(features, labels)`` pair of plain tensors travels as one
    shared-memory segment (:class:`_OneStoragePair`); anything else as it is."""
    if (type(batch) is tuple and len(batch) == 2 and all(type(t) is torch.Tensor and not t.is_shared() for t in batch)
            and all(t.is_contiguous() and t.device.type == "cpu" for t in batch)):
        return _OneStoragePair(batch)
    return batch


def _features_tensor(features: Any) -> Any:
    if isinstance(features, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(features))
    if isinstance(features, Ragged):
        values = features.values if features.values.flags.writeable else features.values.copy()
        return RaggedBatch(torch.split(torch.from_numpy(values), features.lengths().tolist()))
    return list(features)


def _labels_tensor(labels: np.ndarray) -> torch.Tensor:
    if labels.dtype.kind == "f":
        return torch.from_numpy(labels.astype(np.float32))
    return torch.from_numpy(labels if labels.flags.writeable else labels.copy())


def make_batch(block: Block, transform: Callable[..., Any] | None, collate: Callable[..., Any] | None) -> Any:
    """``(features, labels)`` tensors (features alone when unlabelled), or the user's transform/collate output."""
    if transform is None and collate is None:
        features = _features_tensor(block.features)
        return features if block.labels is None else (features, _labels_tensor(block.labels))
    samples = [transform(f) if transform is not None else _sample_tensor(f) for f in block.features]
    if block.labels is None:
        items: list[Any] = samples
    else:
        items = list(zip(samples, block.labels.tolist(), strict=True))
    return (collate or default_collate)(items)


def _sample_tensor(feature: Any) -> Any:
    return torch.from_numpy(np.array(feature)) if isinstance(feature, np.ndarray) else feature
