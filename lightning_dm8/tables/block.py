"""A block: consecutive dataset rows decoded into columnar numpy data.

Rows travel as blocks end to end (database -> cache -> batch), so per-row Python work happens once, when a
block is first decoded from database rows. The cache's byte form of a block lives with the cache
(:mod:`lightning_dm8.loading.cache_format`), the gathering of blocks into batches with the loader
(:mod:`lightning_dm8.loading.assembly`).

A block decoded from database rows is built in its *flat form* from the start: one buffer holding, after
:data:`HEADROOM` bytes left for whoever stores it, the row ids, then one segment per column, labels first
(:mod:`lightning_dm8.tables.segments`), all little-endian; the block's arrays are views of that buffer. The rows'
bytes are copied once, from the driver's values into that buffer, and the cache stores the same buffer
(:func:`~lightning_dm8.loading.cache_format.pack_block` only fills in its header): no second copy to pack it, and
no unpacking on the way to a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightning_dm8.tables.codecs import FeatureCodec, LabelKind
from lightning_dm8.tables.columns import Columns, concat_column, take_column
from lightning_dm8.tables.segments import align, encode_values, layout, query_order, read_column


@dataclass
class Block:
    """Rows ``row_ids`` with their features and labels.

    Features are an array ``(n, *shape)`` for fixed shapes, a :class:`Ragged` for variable-length arrays, a list
    for text and bytes, and a :class:`Columns` of those for a record dataset. Labels are None (unlabelled), an
    array ``(n,)`` (or ``(n, k)`` for a vector target), or a :class:`Columns` for a record's several targets.

    ``flat``: the block's flat form (see the module's doc) when its arrays are views of one, else None (a block
    made by :meth:`take` or :meth:`concat`, or by hand).
    """

    row_ids: np.ndarray
    features: Any
    labels: Any
    flat: bytearray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.row_ids.shape[0])

    def take(self, index: np.ndarray) -> Block:
        """The rows at positions ``index`` (in that order)."""
        labels = None if self.labels is None else take_column(self.labels, index)
        return Block(self.row_ids[index], take_column(self.features, index), labels)

    @staticmethod
    def concat(blocks: Sequence[Block]) -> Block:
        """One block holding the rows of ``blocks`` in order."""
        if len(blocks) == 1:
            return blocks[0]
        labels = None if blocks[0].labels is None else concat_column([b.labels for b in blocks])
        return Block(np.concatenate([b.row_ids for b in blocks]), concat_column([b.features for b in blocks]), labels)


def label_dtype(kind: LabelKind) -> np.dtype:
    """The little-endian dtype labels of this kind are held in: int64 or float64."""
    return np.dtype("<i8") if kind == "int" else np.dtype("<f8")


HEADROOM = 24
"""Bytes left free at the front of a block's flat form, for a storage header (the cache's is 24 bytes)."""


def block_columns(block: Block, codec: FeatureCodec, label_kind: LabelKind) -> list[Any]:
    """The block's columns in the order of :func:`~lightning_dm8.tables.segments.layout`."""
    if codec.kind != "record":
        return ([] if label_kind == "none" else [block.labels]) + [block.features]
    targets = [name for name, _ in codec.targets]
    labels = [block.labels] if len(targets) == 1 else [block.labels[name] for name in targets]
    return labels + [block.features[name] for name, _ in codec.fields]


def block_of(
    row_ids: np.ndarray, columns: Sequence[Any], codec: FeatureCodec, label_kind: LabelKind,
    flat: bytearray | None = None,
) -> Block:
    """The block whose columns, in the order of :func:`~lightning_dm8.tables.segments.layout`, are ``columns``."""
    if codec.kind != "record":
        labels = None if label_kind == "none" else columns[0]
        return Block(row_ids, columns[-1], labels, flat)
    n_targets = len(codec.targets)
    features = Columns(zip([name for name, _ in codec.fields], columns[n_targets:], strict=True))
    targets = columns[:n_targets]
    if n_targets <= 1:
        return Block(row_ids, features, targets[0] if targets else None, flat)
    return Block(row_ids, features, Columns(zip([name for name, _ in codec.targets], targets, strict=True)), flat)


def block_from_rows(rows: Sequence[Sequence[Any]], codec: FeatureCodec, label_kind: LabelKind, table: str) -> Block:
    """Decode database rows ``(row_id, *features, *labels)`` into a block, rejecting NULLs and wrong sizes.

    The block is built in its flat form (see the module's doc): each row's bytes are copied once.

    Raises:
        InvalidDatasetError: naming the table and the row id of a NULL or malformed value.
    """
    n = len(rows)
    row_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    start, encoded = 1, {}
    for segment in query_order(codec, label_kind):
        width = segment.width
        values = [r[start] for r in rows] if width == 1 else [r[start : start + width] for r in rows]
        encoded[segment.name] = encode_values(segment, values, row_ids, table)
        start += width
    parts: list[Any] = [bytes(HEADROOM), row_ids.astype("<i8", copy=False).tobytes()]
    pos = HEADROOM + 8 * n
    for segment in layout(codec, label_kind):
        padding = align(pos) - pos
        if padding:
            parts.append(bytes(padding))
        parts.extend(encoded[segment.name].parts)
        pos += padding + encoded[segment.name].nbytes
    flat = bytearray().join(parts)
    return _views(flat, row_ids, codec, label_kind, {name: e.objects for name, e in encoded.items()})


def _views(
    flat: bytearray, row_ids: np.ndarray, codec: FeatureCodec, label_kind: LabelKind, objects: dict[str, Any]
) -> Block:
    """The block of flat form ``flat`` whose columns are read-only views of it (the flat form is also the value the
    cache stores, so nothing may write through a block; text and bytes columns: the lists
    ``objects`` names, as decoded; row ids, a few bytes a row, are the array they were decoded into)."""
    n = len(row_ids)
    pos = HEADROOM + 8 * n
    readonly = memoryview(flat).toreadonly()
    columns = []
    for segment in layout(codec, label_kind):
        pos = align(pos)
        if objects.get(segment.name) is not None:
            column, pos = objects[segment.name], _end_of_objects(flat, pos, n)
        else:
            column, pos = read_column(readonly, pos, segment, n)
        columns.append(column)
    return block_of(row_ids, columns, codec, label_kind, flat)


def _end_of_objects(flat: bytearray, pos: int, n: int) -> int:
    offsets = np.frombuffer(flat, dtype="<i8", count=n + 1, offset=pos)
    return pos + 8 * (n + 1) + int(offsets[-1])
