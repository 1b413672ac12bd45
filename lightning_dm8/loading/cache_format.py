"""The byte form of a cached block: one LMDB value per block, checksummed, read in place.

Layout (little-endian)::

    magic     4 bytes   b"LDB3"
    checksum  8 bytes   XXH3-64 of every byte after this field
    rows      4 bytes   n, the block's row count
    size      8 bytes   bytes after this 24-byte header
    row ids             n int64
    segments            one per column, labels first, each at an 8-byte boundary
                        (:mod:`lightning_dm8.tables.segments`): fixed size (arrays, numbers, labels): n rows of the
                        column's dtype and shape; variable size (varlen, text, bytes): n + 1 int64 byte offsets,
                        then the payload

The header is 24 bytes, so the arrays after it keep the value's 8-byte alignment.

The checksum: XXH3-64 (``xxhash``), because a warm epoch checks every block it reads once per process, and the check
was a large part of that epoch. Measured on the benchmark machine (2-core AMD EPYC) for a 256-row CIFAR-sized block
(786 KB): XXH3-64 0.013 ms, CRC-32 (zlib, the format before, ``LDB2``) 0.25 ms; for a whole 50,000-row CIFAR table
(154 MB) read in blocks: 6 ms against 44 ms, where the warm epoch that reads it takes about 250 ms. A cache of the
older format is emptied and filled again when it is opened (its format is part of the cache's version). The
checksum finds corrupt, truncated and foreign values (anything :func:`pack_block` did not write for this block); it
is not a signature: whoever can write the cache directory could forge it, which is why the cache refuses a directory
others can write (:mod:`lightning_dm8.loading.cache`).
"""

from __future__ import annotations

import struct

import numpy as np
import xxhash

from lightning_dm8.tables.block import HEADROOM, Block, block_columns, block_of
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind
from lightning_dm8.tables.segments import align, layout, pack_column, read_columns, segment_end

FORMAT = "LDB3"
_MAGIC = FORMAT.encode()
_HEADER = struct.Struct("<4sQIQ")  # magic, checksum, rows, size
_CHECKED_FROM = 12  # the checksum covers the row count, the size and everything after the header
assert _HEADER.size == HEADROOM, "a block's flat form leaves room for exactly this header"


class CorruptBlockError(ValueError):
    """A cached value is not the packed block it should be (checksum, size, layout or row ids differ)."""


def pack_block(block: Block, codec: FeatureCodec, label_kind: LabelKind) -> bytes | bytearray:
    """The block as one compact value: header, row ids, then one segment per column.

    A block decoded from database rows already is that value after its header (its flat form,
    :mod:`lightning_dm8.tables.block`): the header is written into the room left for it and the same buffer is
    returned, no copy. Other blocks are packed into a new value.
    """
    if block.flat is not None:
        return _seal(block.flat, len(block))
    parts = [block.row_ids.astype("<i8").tobytes()]
    size = len(parts[0])
    for segment, column in zip(layout(codec, label_kind), block_columns(block, codec, label_kind), strict=True):
        padding = align(size) - size
        segment_parts = ([bytes(padding)] if padding else []) + pack_column(segment, column)
        parts.extend(segment_parts)
        size += sum(len(p) for p in segment_parts)
    return _seal(bytearray().join([bytes(_HEADER.size), *parts]), len(block))


def _seal(flat: bytearray, n: int) -> bytearray:
    """Write the header into the first bytes of ``flat`` (a block's flat form), checksum last."""
    _HEADER.pack_into(flat, 0, _MAGIC, 0, n, len(flat) - _HEADER.size)
    _HEADER.pack_into(flat, 0, _MAGIC, _checksum(flat), n, len(flat) - _HEADER.size)
    return flat


def _checksum(buf: bytes | bytearray | memoryview) -> int:
    """XXH3-64 of the value after its checksum field."""
    return xxhash.xxh3_64_intdigest(memoryview(buf)[_CHECKED_FROM:])


def check_packed(buf: bytes | memoryview, codec: FeatureCodec, label_kind: LabelKind, lo: int, hi: int) -> None:
    """Check that ``buf`` is the packed block of rows ``[lo, hi)``: header, checksum, sizes, offsets, row ids.

    A value that passes can be read with :func:`take_packed` without reading outside it.

    Raises:
        CorruptBlockError: saying what is wrong.
    """
    n_bytes = len(buf)
    if n_bytes < _HEADER.size:
        raise CorruptBlockError(f"{n_bytes} bytes, shorter than a block header")
    magic, checksum, n, size = _HEADER.unpack_from(buf, 0)
    if magic != _MAGIC:
        raise CorruptBlockError(f"not a packed block (starts with {bytes(magic)!r}, expected {_MAGIC!r})")
    if _checksum(buf) != checksum:
        raise CorruptBlockError("its checksum does not match its contents")
    if size != n_bytes - _HEADER.size:
        raise CorruptBlockError(f"the header announces {size} bytes after it, the value holds {n_bytes - _HEADER.size}")
    if n != hi - lo:
        raise CorruptBlockError(f"it holds {n} rows, the block has {hi - lo}")
    pos = _HEADER.size + 8 * n
    try:
        for segment in layout(codec, label_kind):
            pos = segment_end(buf, align(pos), segment, n, n_bytes)
    except ValueError as exc:
        raise CorruptBlockError(str(exc)) from exc
    if pos != n_bytes:
        raise CorruptBlockError(f"{size} bytes of rows, expected {pos - _HEADER.size}")
    if not np.array_equal(np.frombuffer(buf, dtype="<i8", count=n, offset=_HEADER.size), np.arange(lo, hi)):
        raise CorruptBlockError(f"its row ids are not {lo}..{hi - 1}")


def unpack_block(buf: bytes | memoryview, codec: FeatureCodec, label_kind: LabelKind) -> Block:
    """Inverse of :func:`pack_block` (check the value first with :func:`check_packed`).

    Fixed-size and variable-length array columns and row ids are read-only views of ``buf`` (no copy: keep ``buf``
    valid while they are used); text and bytes rows are decoded.
    """
    return _read(buf, codec, label_kind, None)


def packed_views(buf: bytes | memoryview, codec: FeatureCodec, label_kind: LabelKind) -> Block | None:
    """A checked packed block as read-only views of ``buf`` (an LMDB view stays valid until its transaction ends), for
    :meth:`~lightning_dm8.loading.assembly.Assembler.add_rows` to copy rows straight from it; None when a column holds
    text or bytes, whose rows are decoded: take only the rows needed with :func:`take_packed`."""
    if any(segment.form == "objects" for segment in layout(codec, label_kind)):
        return None
    return _read(buf, codec, label_kind, None)


def take_packed(buf: bytes | memoryview, codec: FeatureCodec, label_kind: LabelKind, index: np.ndarray) -> Block:
    """Rows at positions ``index`` of a packed block, copying only those rows (the buffer may be an LMDB view).

    The value is trusted to be well formed: check it with :func:`check_packed` first.
    """
    return _read(buf, codec, label_kind, index)


def _read(buf: bytes | memoryview, codec: FeatureCodec, label_kind: LabelKind, index: np.ndarray | None) -> Block:
    n = _rows(buf)
    row_ids = np.frombuffer(buf, dtype="<i8", count=n, offset=_HEADER.size)
    try:
        columns = read_columns(buf, _HEADER.size + 8 * n, layout(codec, label_kind), n, index)
    except UnicodeDecodeError as exc:
        raise CorruptBlockError(f"a text row is not UTF-8 ({exc})") from exc
    return block_of(row_ids if index is None else row_ids[index], columns, codec, label_kind)


def _rows(buf: bytes | memoryview) -> int:
    if len(buf) < _HEADER.size or bytes(buf[:4]) != _MAGIC:
        raise CorruptBlockError("not a packed block")
    return int(_HEADER.unpack_from(buf, 0)[2])
