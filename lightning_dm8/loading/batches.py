"""Turning a block of rows into what a training step receives.

With no per-sample transform and no collate function, a batch is built from whole arrays at once — no
per-sample Python work — which is where most of a DataLoader's time usually goes.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import default_collate

from lightning_dm8.tables.block import Block
from lightning_dm8.tables.columns import Columns, column_value
from lightning_dm8.tables.ragged import Ragged, offsets_of

Hook = Callable[..., Any] | str | None
Transform = Callable[..., Any] | dict[str, Callable[..., Any]]
"""A per-sample transform: one callable (the features of a sample; a record's sample dict), or one per column."""


def resolve_transform(hook: Hook | Mapping[str, Hook], what: str) -> Transform | None:
    """A per-sample transform: one callable (or dotted path), or a dict ``{column: callable or dotted path}``."""
    if isinstance(hook, Mapping):
        resolved = {str(column): resolve_callable(fn, f"{what}[{column!r}]") for column, fn in hook.items()}
        return {column: fn for column, fn in resolved.items() if fn is not None}
    return resolve_callable(hook, what)


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


def _view(segment: torch.Tensor, start: int, dtype: torch.dtype, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    count = math.prod(shape)
    return segment[start : start + count * dtype.itemsize].view(dtype).view(shape)


class Padded(NamedTuple):
    """A batch of variable-length rows padded to the longest (``pad_varlen=True``): ``values`` ``(n, longest)``, the
    rows left-aligned and filled with the pad value; ``lengths`` ``(n,)`` int64, each row's own length."""

    values: torch.Tensor
    lengths: torch.Tensor


_TREES = (dict, Padded)
"""Batches (or their features) that travel as :class:`_OneStorageTree`."""


def for_transfer(batch: Any) -> Any:
    """``batch`` ready to leave a DataLoader worker as one shared-memory segment (:class:`_OneStorageTree`): a
    ``(features, labels)`` pair of plain contiguous tensors, a record batch (a dict of columns) or a padded one, alone
    or with its labels; anything else as it is."""
    plain_pair = (type(batch) is tuple and len(batch) == 2
                  and all(type(t) is torch.Tensor and not t.is_shared() for t in batch)
                  and all(t.is_contiguous() and t.device.type == "cpu" for t in batch))
    if plain_pair or type(batch) in _TREES or (type(batch) is tuple and len(batch) == 2 and type(batch[0]) in _TREES):
        return _OneStorageTree(batch)
    return batch


class _Slot(NamedTuple):
    """Where a tensor of a batch lies in its segment (pickled in the tensor's place)."""

    number: int  # its place in the list of the batch's tensors
    dtype: torch.dtype
    shape: tuple[int, ...]


class _RaggedSlot(NamedTuple):
    """A :class:`RaggedBatch` in a segment: its values, flat, and the rows' lengths."""

    flat: _Slot
    lengths: list[int]


class _OneStorageTree(tuple):
    """A batch on its way from a DataLoader worker to the main process.

    torch hands each tensor over in a shared-memory segment of its own, passing its file descriptor through a
    connection that is set up and authenticated for every tensor: more work than copying the batch. Pickled, every
    plain tensor in this batch (each :class:`RaggedBatch` as one flat tensor) is copied into one segment, so the
    batch costs one hand-over instead of one per tensor (per row, for variable-length columns); unpickled, it is the
    same structure of tensors (views of that segment)."""

    def __new__(cls, batch: Any) -> _OneStorageTree:
        return super().__new__(cls, (batch,))

    def __reduce__(self) -> tuple[Any, ...]:
        tensors: list[torch.Tensor] = []
        spec = _strip(self[0], tensors)
        starts, size = [], 0
        for tensor in tensors:
            size = -(-size // 16) * 16  # each tensor aligned for any dtype
            starts.append(size)
            size += tensor.numel() * tensor.element_size()
        segment = torch.empty(size, dtype=torch.uint8).share_memory_()
        for tensor, start in zip(tensors, starts, strict=True):
            _view(segment, start, tensor.dtype, tensor.shape).copy_(tensor)
        return (_tree_from_segment, (segment, spec, starts))


def _movable(value: Any) -> bool:
    return type(value) is torch.Tensor and value.device.type == "cpu" and not value.is_shared()


def _strip(value: Any, tensors: list[torch.Tensor]) -> Any:
    """``value`` with each movable tensor replaced by its :class:`_Slot` (numbered by its place in ``tensors``)."""
    if _movable(value):
        tensors.append(value)
        return _Slot(len(tensors) - 1, value.dtype, tuple(value.shape))
    if type(value) is RaggedBatch and value and all(_movable(t) and t.dim() == 1 for t in value):
        if len({t.dtype for t in value}) == 1:
            flat = torch.cat(list(value))
            return _RaggedSlot(_strip(flat, tensors), [int(t.shape[0]) for t in value])
    if type(value) is dict:
        return {key: _strip(item, tensors) for key, item in value.items()}
    if type(value) is Padded:
        return Padded(*(_strip(item, tensors) for item in value))
    if type(value) is tuple:
        return tuple(_strip(item, tensors) for item in value)
    return value


def _tree_from_segment(segment: torch.Tensor, spec: Any, starts: list[int]) -> Any:
    def fill(value: Any) -> Any:
        if type(value) is _Slot:
            return _view(segment, starts[value.number], value.dtype, value.shape)
        if type(value) is _RaggedSlot:
            return RaggedBatch(torch.split(fill(value.flat), value.lengths))
        if type(value) is dict:
            return {key: fill(item) for key, item in value.items()}
        if type(value) is Padded:
            return Padded(*(fill(item) for item in value))
        if type(value) is tuple:
            return tuple(fill(item) for item in value)
        return value

    return fill(spec)


def _writable(array: np.ndarray) -> np.ndarray:
    """``array`` itself, or a copy when it is read-only (a view of a cached block): torch must never write into it,
    and warns about such arrays."""
    return array if array.flags.writeable else array.copy()


def _ragged_tensor(features: Ragged, pad_value: float | None) -> Any:
    lengths = features.lengths()
    if pad_value is None:
        return RaggedBatch(torch.split(torch.from_numpy(_writable(features.values)), lengths.tolist()))
    longest = int(lengths.max()) if len(lengths) else 0
    padded = np.full((len(lengths), longest), pad_value, dtype=features.values.dtype)
    padded[np.arange(longest) < lengths[:, None]] = features.values  # row by row, left-aligned
    return Padded(torch.from_numpy(padded), torch.from_numpy(lengths.astype(np.int64)))


def _features_tensor(features: Any, pad_value: float | None = None) -> Any:
    if isinstance(features, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(features))
    if isinstance(features, Ragged):
        return _ragged_tensor(features, pad_value)
    return list(features)


def _column_tensor(column: Any, pad_value: float | None) -> Any:
    """One column of a record batch: numbers and fixed arrays stacked (a float column as float32, as labels are),
    variable-length arrays as for a single feature, text and bytes as lists."""
    if isinstance(column, np.ndarray):
        return _labels_tensor(column) if column.ndim == 1 else torch.from_numpy(_writable(column))
    return _features_tensor(column, pad_value)


def _labels_tensor(labels: np.ndarray) -> torch.Tensor:
    if labels.dtype.kind == "f":
        return torch.from_numpy(labels.astype(np.float32))
    return torch.from_numpy(_writable(labels))


def _targets(labels: Any) -> Any:
    """A block's labels as a batch holds them: one tensor, or a dict of tensors for a record's several targets."""
    if isinstance(labels, Columns):
        return {name: _labels_tensor(column) for name, column in labels.items()}
    return _labels_tensor(labels)


def make_batch(block: Block, transform: Transform | None, collate: Callable[..., Any] | None,
               pad_value: float | None = None) -> Any:
    """``(features, labels)`` tensors (features alone when unlabelled), or the user's transform/collate output.

    A record block's features are a dict of its columns (:func:`_column_tensor`); ``pad_value`` (not None) pads
    variable-length rows into a :class:`Padded` pair instead of a :class:`RaggedBatch`.
    """
    if isinstance(block.features, Columns):
        return _record_batch(block, transform, collate, pad_value)
    if transform is None and collate is None:
        features = _features_tensor(block.features, pad_value)
        return features if block.labels is None else (features, _labels_tensor(block.labels))
    samples = [transform(f) if callable(transform) else _sample_tensor(f) for f in block.features]
    if block.labels is None:
        items: list[Any] = samples
    else:
        items = list(zip(samples, block.labels.tolist(), strict=True))
    return (collate or default_collate)(items)


def _record_batch(block: Block, transform: Transform | None, collate: Callable[..., Any] | None,
                  pad_value: float | None) -> Any:
    """A record block's batch: ``(dict of columns, labels)``; with a transform the columns are built from the
    transformed samples; with a collate function, that gets ``[(sample dict, label), ...]``."""
    columns: Columns = block.features
    if transform is None and collate is None:
        features: Any = {name: _column_tensor(column, pad_value) for name, column in columns.items()}
    else:
        samples = [_record_sample(columns, i, transform) for i in range(len(block))]
        if collate is not None:
            if block.labels is None:
                return collate(samples)
            return collate([(sample, column_value(block.labels, i)) for i, sample in enumerate(samples)])
        features = {name: _stack([s[name] for s in samples], pad_value) for name in samples[0]} if samples else {}
    return features if block.labels is None else (features, _targets(block.labels))


def _record_sample(columns: Columns, i: int, transform: Transform | None) -> dict[str, Any]:
    """Row ``i`` as a dict of its columns' values, transformed: a dict of callables applies each to its column's
    value, a plain callable to the whole dict. Untransformed arrays become tensors."""
    sample = {name: column_value(column, i) for name, column in columns.items()}
    if transform is not None and not isinstance(transform, dict):
        return transform(sample)
    for name, value in sample.items():
        hook = None if transform is None else transform.get(name)
        sample[name] = hook(value) if hook is not None else _sample_tensor(value)
    return sample


def _stack(values: list[Any], pad_value: float | None) -> Any:
    """One column of a batch from its samples' values: tensors (and arrays) of one shape stacked, 1-D ones of
    varying length as for a variable-length column, numbers as a tensor (float32, int64 or bool), anything else
    (text, bytes) as a list."""
    first = values[0]
    if all(isinstance(v, (torch.Tensor, np.ndarray)) for v in values):
        tensors = [torch.as_tensor(v) for v in values]
        if all(t.shape == tensors[0].shape for t in tensors):
            return torch.stack(tensors)
        if all(t.dim() == 1 for t in tensors):
            flat = torch.cat(tensors)
            return _ragged_tensor(Ragged(flat.numpy(), offsets_of([len(t) for t in tensors])), pad_value)
    if isinstance(first, (bool, int, float)) and all(isinstance(v, (bool, int, float)) for v in values):
        return torch.tensor(values, dtype=torch.float32 if any(isinstance(v, float) for v in values) else None)
    return list(values)


def _sample_tensor(feature: Any) -> Any:
    return torch.from_numpy(np.array(feature)) if isinstance(feature, np.ndarray) else feature
