"""A block: consecutive dataset rows decoded into columnar numpy data, and its compact binary form for the cache.

Rows travel as blocks end to end (database -> cache -> batch), so per-row Python work happens once, when a
block is first decoded from database rows.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightning_dm8.errors import InvalidDatasetError
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind
from lightning_dm8.tables.ragged import Ragged, gather, offsets_of

_MAGIC = b"LDB1"
_HEADER = struct.Struct("<4sQ")


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
        labels = None if first.labels is None else np.concatenate([b.labels for b in blocks])  # type: ignore[misc]
        return Block(np.concatenate([b.row_ids for b in blocks]), features, labels)


class Assembler:
    """Builds a block of ``n`` rows part by part, each part's rows going to its positions ``group`` (the groups
    partition ``0..n-1``). Array features are written straight to their places, so no part outlives its ``add``;
    other features are joined and reordered at the end."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._out: Block | None = None
        self._parts: list[Block] = []
        self._groups: list[np.ndarray] = []

    def add(self, part: Block, group: np.ndarray) -> None:
        if not isinstance(part.features, np.ndarray):
            self._parts.append(part)
            self._groups.append(group)
            return
        if self._out is None:
            labels = None if part.labels is None else np.empty(self.n, dtype=part.labels.dtype)
            self._out = Block(np.empty(self.n, dtype=part.row_ids.dtype),
                              np.empty((self.n, *part.features.shape[1:]), dtype=part.features.dtype), labels)
        self._out.features[group] = part.features
        self._out.row_ids[group] = part.row_ids
        if self._out.labels is not None:
            self._out.labels[group] = part.labels

    def result(self) -> Block:
        if self._out is not None:
            return self._out
        order = np.concatenate(self._groups)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return Block.concat(self._parts).take(inverse)


def assemble(parts: Sequence[Block], groups: Sequence[np.ndarray], n: int) -> Block:
    """One block of ``n`` rows holding ``parts[i]``'s rows at positions ``groups[i]`` (see :class:`Assembler`):
    one copy instead of a concat and a take."""
    if len(parts) == 1:
        return parts[0].take(np.argsort(groups[0], kind="stable")) if np.any(np.diff(groups[0]) < 0) else parts[0]
    assembler = Assembler(n)
    for part, group in zip(parts, groups):
        assembler.add(part, group)
    return assembler.result()


def group_by_block(row_ids: np.ndarray, block_size: int) -> list[tuple[int, np.ndarray]]:
    """``(block, positions of row_ids in that block)`` for each block the rows fall in, in block order."""
    blocks = row_ids // block_size
    order = np.argsort(blocks, kind="stable")
    cut = np.flatnonzero(np.diff(blocks[order])) + 1
    return [(int(blocks[group[0]]), group) for group in np.split(order, cut)]


def _label_dtype(kind: LabelKind) -> np.dtype:
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
        labels = np.asarray(raw_labels, dtype=_label_dtype(label_kind))
    return Block(row_ids, _decode_features(values, codec, row_ids, table), labels)


def _decode_features(values: list[Any], codec: FeatureCodec, row_ids: np.ndarray, table: str) -> Any:
    for i, value in enumerate(values):
        if value is None or (codec.kind == "numeric" and None in value):
            raise InvalidDatasetError(f"table {table!r}, row_id {row_ids[i]}: the features are NULL; fix or delete that row")
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


def pack_block(block: Block, codec: FeatureCodec, label_kind: LabelKind) -> bytes:
    """The block as one compact value: header, row ids, labels, then features (offsets + payload if ragged)."""
    parts = [_HEADER.pack(_MAGIC, len(block)), block.row_ids.astype("<i8").tobytes()]
    if block.labels is not None:
        parts.append(block.labels.astype(_label_dtype(label_kind)).tobytes())
    if isinstance(block.features, np.ndarray):
        parts.append(np.ascontiguousarray(block.features).tobytes())
    elif isinstance(block.features, Ragged):
        ragged = block.features
        parts.append((ragged.offsets * codec.np_dtype.itemsize).astype("<i8").tobytes())
        parts.append(np.ascontiguousarray(ragged.values, dtype=codec.np_dtype).tobytes())
    else:
        payloads = [_raw(f, codec) for f in block.features]
        parts.append(offsets_of([len(p) for p in payloads]).astype("<i8").tobytes())
        parts.extend(payloads)
    return b"".join(parts)


def _raw(feature: Any, codec: FeatureCodec) -> bytes:
    return feature.encode("utf-8") if codec.kind == "text" else bytes(feature)


def unpack_block(buf: bytes | memoryview, codec: FeatureCodec, label_kind: LabelKind) -> Block:
    """Inverse of :func:`pack_block`; raises ``ValueError`` on a value that is not a packed block."""
    magic, n = _HEADER.unpack_from(buf, 0)
    if magic != _MAGIC:
        raise ValueError("not a packed block")
    return take_packed(buf, codec, label_kind, np.arange(n))


def take_packed(buf: bytes | memoryview, codec: FeatureCodec, label_kind: LabelKind, index: np.ndarray) -> Block:
    """Rows at positions ``index`` of a packed block, copying only those rows (the buffer may be an LMDB view)."""
    magic, n = _HEADER.unpack_from(buf, 0)
    if magic != _MAGIC:
        raise ValueError("not a packed block")
    pos = _HEADER.size
    row_ids = np.frombuffer(buf, dtype="<i8", count=n, offset=pos)[index]
    pos += 8 * n
    labels = None
    if label_kind != "none":
        labels = np.frombuffer(buf, dtype=_label_dtype(label_kind), count=n, offset=pos)[index]
        pos += 8 * n
    if codec.kind in ("array", "numeric"):
        dtype = codec.np_dtype if codec.kind == "array" else np.dtype(np.float32)
        shape = codec.shape if codec.kind == "array" else (len(codec.columns),)
        count = n * math.prod(shape)
        features: Any = np.frombuffer(buf, dtype=dtype, count=count, offset=pos).reshape((n, *shape))[index]
        return Block(row_ids, features, labels)
    # Ragged features: decode only the wanted rows (the same values unpack_block(...).take(index) gives).
    offsets = np.frombuffer(buf, dtype="<i8", count=n + 1, offset=pos)
    base = pos + 8 * (n + 1)
    if codec.kind == "varlen":
        itemsize = codec.np_dtype.itemsize
        flat = np.frombuffer(buf, dtype=codec.np_dtype, count=int(offsets[-1]) // itemsize, offset=base)
        return Block(row_ids, Ragged(*gather(flat, offsets[:-1] // itemsize, offsets[1:] // itemsize, index)), labels)
    starts, stops = (offsets[index] + base).tolist(), (offsets[index + 1] + base).tolist()
    chunks = [bytes(buf[a:b]) for a, b in zip(starts, stops)]
    if codec.kind == "text":
        features = [c.decode("utf-8") for c in chunks]
    else:
        features = chunks
    return Block(row_ids, features, labels)
