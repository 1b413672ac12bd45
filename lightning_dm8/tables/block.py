"""A block: consecutive dataset rows decoded into columnar numpy data.

Rows travel as blocks end to end (database -> cache -> batch), so per-row Python work happens once, when a
block is first decoded from database rows. The cache's byte form of a block lives with the cache
(:mod:`lightning_dm8.loading.cache_format`), the gathering of blocks into batches with the loader
(:mod:`lightning_dm8.loading.assembly`).

A block decoded from database rows is built in its *flat form* from the start: one buffer holding, after
:data:`HEADROOM` bytes left for whoever stores it, the row ids, the labels and the features (fixed-size rows, or
byte offsets then the payload), all little-endian; the block's arrays are views of that buffer. The rows' bytes are
copied once, from the driver's values into that buffer, and the cache stores the same buffer
(:func:`~lightning_dm8.loading.cache_format.pack_block` only fills in its header): no second copy to pack it, and
no unpacking on the way to a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightning_dm8.errors import InvalidDatasetError
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind
from lightning_dm8.tables.ragged import Ragged, offsets_of


@dataclass
class Block:
    """Rows ``row_ids`` with their features and labels (array or None).

    Features are an array ``(n, *shape)`` for fixed shapes, a :class:`Ragged` for variable-length arrays, and a
    list for text and bytes.

    ``flat``: the block's flat form (see the module's doc) when its arrays are views of one, else None (a block
    made by :meth:`take` or :meth:`concat`, or by hand).
    """

    row_ids: np.ndarray
    features: Any
    labels: np.ndarray | None
    flat: bytearray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.row_ids.shape[0])

    def take(self, index: np.ndarray) -> Block:
        """The rows at positions ``index`` (in that order)."""
        if isinstance(self.features, np.ndarray):
            features: Any = self.features[index]
        elif isinstance(self.features, Ragged):
            features = self.features.take(index)
        else:
            features = [self.features[i] for i in index.tolist()]
        labels = None if self.labels is None else self.labels[index]
        return Block(self.row_ids[index], features, labels)

    @staticmethod
    def concat(blocks: Sequence[Block]) -> Block:
        """One block holding the rows of ``blocks`` in order."""
        if len(blocks) == 1:
            return blocks[0]
        first = blocks[0]
        if isinstance(first.features, np.ndarray):
            features: Any = np.concatenate([b.features for b in blocks])
        elif isinstance(first.features, Ragged):
            features = Ragged.concat([b.features for b in blocks])
        else:
            features = [f for b in blocks for f in b.features]
        labels = None if first.labels is None else np.concatenate([b.labels for b in blocks])
        return Block(np.concatenate([b.row_ids for b in blocks]), features, labels)


def label_dtype(kind: LabelKind) -> np.dtype:
    """The little-endian dtype labels of this kind are held in: int64 or float64."""
    return np.dtype("<i8") if kind == "int" else np.dtype("<f8")


HEADROOM = 24
"""Bytes left free at the front of a block's flat form, for a storage header (the cache's is 24 bytes)."""


def block_from_rows(rows: Sequence[Sequence[Any]], codec: FeatureCodec, label_kind: LabelKind, table: str) -> Block:
    """Decode database rows ``(row_id, *features, [label])`` into a block, rejecting NULLs and wrong sizes.

    The block is built in its flat form (see the module's doc): each row's bytes are copied once.

    Raises:
        InvalidDatasetError: naming the table and the row id of a NULL or malformed value.
    """
    n = len(rows)
    row_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    width = len(codec.columns) if codec.kind == "numeric" else 1
    values: list[Any] = [r[1] for r in rows] if width == 1 else [r[1 : 1 + width] for r in rows]
    labels = None
    if label_kind != "none":
        raw_labels = [r[1 + width] for r in rows]
        if None in raw_labels:
            bad = row_ids[raw_labels.index(None)]
            raise InvalidDatasetError(f"table {table!r}, row_id {bad}: the label is NULL; fix or delete that row")
        labels = np.asarray(raw_labels, dtype=label_dtype(label_kind))
    _reject_nulls(values, codec, row_ids, table)
    head = [bytes(HEADROOM), row_ids.astype("<i8", copy=False).tobytes()]
    if labels is not None:
        head.append(labels.tobytes())
    if codec.kind == "numeric":
        flat = bytearray().join([*head, np.asarray(values, dtype="<f4").tobytes()])
        return _views(flat, row_ids, labels, codec, None)
    if codec.kind in ("array", "varlen"):
        payloads: list[Any] = values
        sizes = np.fromiter((len(v) for v in values), dtype=np.int64, count=n)
        _check_sizes(sizes, codec, row_ids, table)
        features = None
    else:
        features = [bytes(v) for v in values] if codec.kind == "bytes" else list(values)
        payloads = features if codec.kind == "bytes" else [v.encode("utf-8") for v in values]
        sizes = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=n)
    if codec.kind != "array":
        head.append(offsets_of(sizes).astype("<i8", copy=False).tobytes())
    return _views(bytearray().join([*head, *payloads]), row_ids, labels, codec, features)


def _reject_nulls(values: list[Any], codec: FeatureCodec, row_ids: np.ndarray, table: str) -> None:
    for i, value in enumerate(values):
        if value is None or (codec.kind == "numeric" and None in value):
            raise InvalidDatasetError(
                f"table {table!r}, row_id {row_ids[i]}: the features are NULL; fix or delete that row"
            )


def _check_sizes(sizes: np.ndarray, codec: FeatureCodec, row_ids: np.ndarray, table: str) -> None:
    if codec.kind == "array":
        size = codec.fixed_size or 0
        wrong = np.flatnonzero(sizes != size)
        if len(wrong):
            i = int(wrong[0])
            raise InvalidDatasetError(
                f"table {table!r}, row_id {row_ids[i]}: features hold {sizes[i]} bytes, expected {size} "
                f"({codec.dtype} {codec.shape}); the row is corrupt"
            )
        return
    itemsize = codec.np_dtype.itemsize
    partial = np.flatnonzero(sizes % itemsize)
    if len(partial):
        i = int(partial[0])
        raise InvalidDatasetError(
            f"table {table!r}, row_id {row_ids[i]}: {sizes[i]} bytes is not a whole number of {codec.dtype} items"
        )


def _view(flat: bytearray, dtype: Any, count: int, offset: int) -> np.ndarray:
    """A read-only view: the flat form is also the value the cache stores, so nothing may write through a block."""
    view = np.frombuffer(flat, dtype=dtype, count=count, offset=offset)
    view.flags.writeable = False
    return view


def _views(
    flat: bytearray, row_ids: np.ndarray, labels: np.ndarray | None, codec: FeatureCodec, features: list[Any] | None
) -> Block:
    """The block of flat form ``flat`` whose features are views of it (text and bytes rows: ``features``, as given;
    row ids and labels, a few bytes a row, are the arrays they were decoded into)."""
    n = len(row_ids)
    pos = HEADROOM + 8 * n * (1 if labels is None else 2)
    if codec.kind in ("array", "numeric"):
        dtype = codec.np_dtype if codec.kind == "array" else np.dtype("<f4")
        shape = codec.shape if codec.kind == "array" else (len(codec.columns),)
        return Block(row_ids, _view(flat, dtype, n * math.prod(shape), pos).reshape((n, *shape)), labels, flat)
    if features is not None:
        return Block(row_ids, features, labels, flat)
    offsets = np.frombuffer(flat, dtype="<i8", count=n + 1, offset=pos)
    itemsize = codec.np_dtype.itemsize
    values = _view(flat, codec.np_dtype, int(offsets[-1]) // itemsize, pos + 8 * (n + 1))
    return Block(row_ids, Ragged(values, offsets // itemsize), labels, flat)
