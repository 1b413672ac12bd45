"""A block: consecutive dataset rows decoded into columnar numpy data.

Rows travel as blocks end to end (database -> cache -> batch), so per-row Python work happens once, when a
block is first decoded from database rows. The cache's byte form of a block lives with the cache
(:mod:`lightning_dm8.loading.cache_format`), the gathering of blocks into batches with the loader
(:mod:`lightning_dm8.loading.assembly`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    """

    row_ids: np.ndarray
    features: Any
    labels: np.ndarray | None

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


def block_from_rows(rows: Sequence[Sequence[Any]], codec: FeatureCodec, label_kind: LabelKind, table: str) -> Block:
    """Decode database rows ``(row_id, *features, [label])`` into a block, rejecting NULLs and wrong sizes.

    Raises:
        InvalidDatasetError: naming the table and the row id of a NULL or malformed value.
    """
    n = len(rows)
    row_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    width = len(codec.columns) if codec.kind == "numeric" else 1
    values = [r[1] for r in rows] if width == 1 else [r[1 : 1 + width] for r in rows]
    labels = None
    if label_kind != "none":
        raw_labels = [r[1 + width] for r in rows]
        if None in raw_labels:
            bad = row_ids[raw_labels.index(None)]
            raise InvalidDatasetError(f"table {table!r}, row_id {bad}: the label is NULL; fix or delete that row")
        labels = np.asarray(raw_labels, dtype=label_dtype(label_kind))
    return Block(row_ids, _decode_features(values, codec, row_ids, table), labels)


def _decode_features(values: list[Any], codec: FeatureCodec, row_ids: np.ndarray, table: str) -> Any:
    for i, value in enumerate(values):
        if value is None or (codec.kind == "numeric" and None in value):
            raise InvalidDatasetError(
                f"table {table!r}, row_id {row_ids[i]}: the features are NULL; fix or delete that row"
            )
    if codec.kind == "array":
        size = codec.fixed_size or 0
        joined = b"".join(values)
        if len(joined) != size * len(values):
            bad = next(i for i, v in enumerate(values) if len(v) != size)
            raise InvalidDatasetError(
                f"table {table!r}, row_id {row_ids[bad]}: features hold {len(values[bad])} bytes, expected {size} "
                f"({codec.dtype} {codec.shape}); the row is corrupt"
            )
        return np.frombuffer(joined, dtype=codec.np_dtype).reshape((len(values), *codec.shape))
    if codec.kind == "varlen":
        itemsize = codec.np_dtype.itemsize
        sizes = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
        partial = np.flatnonzero(sizes % itemsize)
        if len(partial):
            i = int(partial[0])
            raise InvalidDatasetError(
                f"table {table!r}, row_id {row_ids[i]}: {sizes[i]} bytes is not a whole number of {codec.dtype} items"
            )
        return Ragged(np.frombuffer(b"".join(values), dtype=codec.np_dtype), offsets_of(sizes // itemsize))
    if codec.kind == "numeric":
        return np.asarray(values, dtype=np.float32)
    if codec.kind == "bytes":
        return [bytes(v) for v in values]
    return list(values)
