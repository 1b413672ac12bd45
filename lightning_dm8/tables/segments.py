"""Segments: where each column of a block lies in its flat form (the bytes a block is decoded into and cached as).

After the row ids, a block's flat form holds one segment per column, labels first, then features; each segment
starts at an 8-byte boundary. A segment is one of three forms:

* **fixed**: ``n`` rows of one dtype and shape (arrays, numeric vectors, int, float and bool columns, labels);
* **ragged**: ``n + 1`` int64 byte offsets, then the payload (variable-length arrays);
* **objects**: the same, holding UTF-8 text or raw bytes, decoded into a list of ``str`` or ``bytes``.

A single-feature dataset has the segments ``label`` (when labelled) and ``features``; a record dataset one segment
per target column, then one per feature column (:func:`layout`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Literal, NamedTuple

import numpy as np

from lightning_dm8.errors import InvalidDatasetError
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind
from lightning_dm8.tables.ragged import Ragged, gather, offsets_of

Form = Literal["fixed", "ragged", "objects"]
_FIXED_KINDS = ("array", "numeric", "int", "float", "bool")


@dataclass(frozen=True)
class Segment:
    """One column of a block: its name, its codec, and how errors about it name it (``subject``)."""

    name: str
    codec: FeatureCodec
    subject: str

    @cached_property
    def form(self) -> Form:
        if self.codec.kind in _FIXED_KINDS:
            return "fixed"
        return "ragged" if self.codec.kind == "varlen" else "objects"

    @property
    def width(self) -> int:
        """How many SQL columns the segment's values come from (a numeric vector: one per number)."""
        return len(self.codec.columns) if self.codec.kind == "numeric" else 1

    @cached_property
    def dtype(self) -> np.dtype:
        """The dtype of the segment's items (float32 for a numeric vector; one byte for text and bytes)."""
        if self.codec.kind == "numeric":
            return np.dtype("<f4")
        return np.dtype(np.uint8) if self.form == "objects" else self.codec.np_dtype

    @cached_property
    def shape(self) -> tuple[int, ...]:
        """The shape of one row's value in a fixed segment."""
        if self.codec.kind == "numeric":
            return (len(self.codec.columns),)
        return self.codec.shape if self.codec.kind == "array" else ()

    @cached_property
    def row_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def plural(self) -> bool:
        return self.name == "features" and self.subject == "the features"


@lru_cache(maxsize=256)
def layout(codec: FeatureCodec, label_kind: LabelKind) -> tuple[Segment, ...]:
    """The segments of a block of this dataset, in flat-form order: labels first, then features (kept per dataset:
    every block of it asks)."""
    if codec.kind == "record":
        return tuple(Segment(name, column, f"column {name!r}") for name, column in (*codec.targets, *codec.fields))
    segments = []
    if label_kind != "none":
        segments.append(Segment("label", FeatureCodec("int" if label_kind == "int" else "float"), "the label"))
    segments.append(Segment("features", codec, "the features"))
    return tuple(segments)


@lru_cache(maxsize=256)
def query_order(codec: FeatureCodec, label_kind: LabelKind) -> tuple[Segment, ...]:
    """The segments in the order of a dataset table's columns after ``row_id``: features first, then labels."""
    segments = layout(codec, label_kind)
    labels = len(codec.targets) if codec.kind == "record" else int(label_kind != "none")
    return segments[labels:] + segments[:labels]


def align(pos: int) -> int:
    """``pos`` rounded up to the next 8-byte boundary, where every segment starts."""
    return -(-pos // 8) * 8


# -- from database values ----------------------------------------------------------------------------------------------


class Encoded(NamedTuple):
    """A segment encoded from database values: its bytes as parts to join, their total size, and for text and bytes
    the decoded values (a list the block holds as they are)."""

    parts: list[Any]
    nbytes: int
    objects: list[Any] | None


def encode_values(segment: Segment, values: list[Any], row_ids: np.ndarray, table: str) -> Encoded:
    """A segment from one column's database values. Rejects NULLs and malformed values, naming the table and row id.

    Raises:
        InvalidDatasetError: the message names the table, the row id and what is wrong.
    """
    _reject_nulls(segment, values, row_ids, table)
    kind = segment.codec.kind
    if segment.form == "fixed" and kind != "array":  # numbers: the driver's values become one array
        data = np.asarray(values, dtype=segment.dtype).tobytes()
        return Encoded([data], len(data), None)
    n = len(values)
    if segment.form == "objects":
        objects = [bytes(v) for v in values] if kind == "bytes" else list(values)
        payloads = objects if kind == "bytes" else [v.encode("utf-8") for v in values]
        sizes = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
        return Encoded([offsets_of(sizes).astype("<i8", copy=False).tobytes(), *payloads],
                       8 * (n + 1) + int(sizes.sum()), objects)
    sizes = np.fromiter(map(len, values), dtype=np.int64, count=n)
    _check_sizes(segment, sizes, row_ids, table)
    if segment.form == "fixed":
        return Encoded(list(values), n * segment.row_bytes, None)
    return Encoded([offsets_of(sizes).astype("<i8", copy=False).tobytes(), *values], 8 * (n + 1) + int(sizes.sum()),
                   None)


def _reject_nulls(segment: Segment, values: list[Any], row_ids: np.ndarray, table: str) -> None:
    if segment.width > 1:
        bad = next((i for i, value in enumerate(values) if value is None or None in value), None)
    else:
        bad = values.index(None) if None in values else None  # ``in`` runs in C: this is every block's cost
    if bad is not None:
        verb = "are" if segment.plural() else "is"
        raise InvalidDatasetError(
            f"table {table!r}, row_id {row_ids[bad]}: {segment.subject} {verb} NULL; fix or delete that row"
        )


def _check_sizes(segment: Segment, sizes: np.ndarray, row_ids: np.ndarray, table: str) -> None:
    codec = segment.codec
    what = "features hold" if segment.plural() else f"{segment.subject} holds"
    if segment.form == "fixed":
        wrong = np.flatnonzero(sizes != segment.row_bytes)
        if len(wrong):
            i = int(wrong[0])
            raise InvalidDatasetError(
                f"table {table!r}, row_id {row_ids[i]}: {what} {sizes[i]} bytes, expected {segment.row_bytes} "
                f"({codec.dtype} {codec.shape}); the row is corrupt"
            )
        return
    partial = np.flatnonzero(sizes % segment.dtype.itemsize)
    if len(partial):
        i = int(partial[0])
        raise InvalidDatasetError(
            f"table {table!r}, row_id {row_ids[i]}: {sizes[i]} bytes is not a whole number of {codec.dtype} items"
        )


# -- from a block's column ---------------------------------------------------------------------------------------------


def pack_column(segment: Segment, data: Any) -> list[bytes]:
    """A segment's bytes from a block's column (an array, a Ragged or a list)."""
    if segment.form == "fixed":
        return [np.ascontiguousarray(data, dtype=segment.dtype).tobytes()]
    if segment.form == "ragged":
        return [(data.offsets * segment.dtype.itemsize).astype("<i8").tobytes(),
                np.ascontiguousarray(data.values, dtype=segment.dtype).tobytes()]
    payloads = [v.encode("utf-8") if segment.codec.kind == "text" else bytes(v) for v in data]
    return [offsets_of([len(p) for p in payloads]).astype("<i8").tobytes(), *payloads]


# -- from the flat form ------------------------------------------------------------------------------------------------


def segment_end(buf: bytes | memoryview | bytearray, pos: int, segment: Segment, n: int, limit: int) -> int:
    """Where the segment starting at ``pos`` ends, checked to lie within ``limit`` with well-formed offsets.

    Raises:
        ValueError: saying what is wrong (the value is not a block of this layout).
    """
    if segment.form == "fixed":
        end = pos + n * segment.row_bytes
        if end > limit:
            raise ValueError(f"{limit - pos} bytes cannot hold {segment.name!r}'s {n} rows of {segment.row_bytes}")
        return end
    base = pos + 8 * (n + 1)
    if base > limit:
        raise ValueError(f"{limit - pos} bytes cannot hold the offsets of {segment.name!r}'s {n} rows")
    offsets = np.frombuffer(buf, dtype="<i8", count=n + 1, offset=pos)
    itemsize = segment.dtype.itemsize
    if (offsets[0] != 0 or offsets[-1] > limit - base or np.any(np.diff(offsets) < 0)
            or np.any(offsets % itemsize)):
        raise ValueError(f"the row offsets of {segment.name!r} do not cut its payload into {n} rows")
    return base + int(offsets[-1])


def read_column(
    buf: bytes | memoryview | bytearray, pos: int, segment: Segment, n: int, index: np.ndarray | None = None
) -> tuple[Any, int]:
    """``(column, end)``: the segment at ``pos`` as a block's column (arrays as views of ``buf``; text and bytes
    decoded), or only its rows at positions ``index`` (copied), and where the segment ends.

    The value is trusted to be well formed (:func:`segment_end` checks it).

    Raises:
        UnicodeDecodeError: a text row is not UTF-8.
    """
    if segment.form == "fixed":
        count = n * math.prod(segment.shape)
        view = np.frombuffer(buf, dtype=segment.dtype, count=count, offset=pos).reshape((n, *segment.shape))
        return (view if index is None else view[index]), pos + n * segment.row_bytes
    offsets = np.frombuffer(buf, dtype="<i8", count=n + 1, offset=pos)
    base = pos + 8 * (n + 1)
    end = base + int(offsets[-1])
    if segment.form == "ragged":
        itemsize = segment.dtype.itemsize
        values = np.frombuffer(buf, dtype=segment.dtype, count=int(offsets[-1]) // itemsize, offset=base)
        items = offsets // itemsize
        if index is None:
            return Ragged(values, items), end
        return Ragged(*gather(values, items[:-1], items[1:], index)), end
    rows = np.arange(n) if index is None else index
    starts, stops = (offsets[rows] + base).tolist(), (offsets[rows + 1] + base).tolist()
    chunks = [bytes(buf[a:b]) for a, b in zip(starts, stops, strict=True)]
    if segment.codec.kind == "bytes":
        return chunks, end
    return [c.decode("utf-8") for c in chunks], end


def read_columns(
    buf: bytes | memoryview | bytearray, pos: int, segments: Sequence[Segment], n: int,
    index: np.ndarray | None = None,
) -> list[Any]:
    """Every segment from ``pos`` on, as :func:`read_column` reads one."""
    columns = []
    for segment in segments:
        column, pos = read_column(buf, align(pos), segment, n, index)
        columns.append(column)
    return columns
