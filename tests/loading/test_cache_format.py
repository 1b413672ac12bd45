"""The cache's byte form of a block: packing round trips for every codec, rows taken in place, and a check that
refuses every value that is not the packed block it should be (corrupt, truncated, foreign, another block's)."""

from __future__ import annotations

import numpy as np
import pytest
import xxhash
from block_rows import ARRAY, BYTES, CODECS, NUMERIC, TEXT, VARLEN, features_equal, rows_for

from lightning_dm8.loading.cache_format import (
    CorruptBlockError,
    check_packed,
    pack_block,
    packed_views,
    take_packed,
    unpack_block,
)
from lightning_dm8.tables.block import Block, block_from_rows
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.ragged import Ragged


def packed_rows(codec: FeatureCodec, n: int = 6, start: int = 0, labelled: bool = True) -> bytes:
    kind = "int" if labelled else "none"
    return pack_block(block_from_rows(rows_for(codec, n, labelled, start), codec, kind, "t"), codec, kind)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_pack_check_and_unpack_round_trip(codec: FeatureCodec, labelled: bool) -> None:
    kind = "int" if labelled else "none"
    block = block_from_rows(rows_for(codec, 6, labelled, start=12), codec, kind, "t")
    packed = pack_block(block, codec, kind)
    check_packed(packed, codec, kind, 12, 18)
    unpacked = unpack_block(packed, codec, kind)
    assert unpacked.row_ids.tolist() == block.row_ids.tolist()
    assert (unpacked.labels is None and block.labels is None) or unpacked.labels.tolist() == block.labels.tolist()
    assert features_equal(unpacked.features, block.features)
    index = np.array([5, 0, 3, 3])
    taken = take_packed(memoryview(packed), codec, kind, index)
    assert taken.row_ids.tolist() == [17, 12, 15, 15]
    assert features_equal(list(taken.features), [block.features[i] for i in index.tolist()])


def test_float_labels_pack_exactly() -> None:
    rows = [(0, 1.0, 2.0, 0.1), (1, 3.0, 4.0, 1 / 3)]
    block = block_from_rows(rows, NUMERIC, "float", "t")
    assert unpack_block(pack_block(block, NUMERIC, "float"), NUMERIC, "float").labels.tolist() == [0.1, 1 / 3]


def test_arrays_after_the_header_keep_8_byte_alignment() -> None:
    packed = packed_rows(ARRAY)
    assert (len(packed) - 6 * (8 + 8 + 8)) % 8 == 0  # 24-byte header + ids + labels + 8-byte rows


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
def test_a_flipped_byte_anywhere_is_found(codec: FeatureCodec) -> None:
    packed = packed_rows(codec)
    for position in range(8, len(packed), max(1, len(packed) // 40)):  # after the magic and the checksum itself
        bad = bytearray(packed)
        bad[position] ^= 0x41
        with pytest.raises(CorruptBlockError):
            check_packed(bytes(bad), codec, "int", 0, 6)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
def test_a_truncated_value_is_refused_not_a_struct_error(codec: FeatureCodec) -> None:
    packed = packed_rows(codec)
    for size in (0, 3, 11, 23, 24, len(packed) // 2, len(packed) - 1):
        with pytest.raises(CorruptBlockError):
            check_packed(packed[:size], codec, "int", 0, 6)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "0 bytes, shorter than a block header"),
        (b"XXXX" + bytes(40), r"not a packed block \(starts with b'XXXX', expected b'LDB3'\)"),
        (b"LDB1" + bytes(8) + bytes(50), "not a packed block"),  # a format without a checksum
        (b"LDB2" + bytes(60), "not a packed block"),  # the format checksummed with CRC-32
        (b"LDB3" + bytes(60), "its checksum does not match its contents"),
    ],
    ids=["empty", "foreign", "ldb1", "ldb2", "zeros"],
)
def test_foreign_values_are_refused_with_the_reason(value: bytes, message: str) -> None:
    with pytest.raises(CorruptBlockError, match=message):
        check_packed(value, ARRAY, "int", 0, 6)


def test_another_blocks_value_or_another_row_count_is_refused() -> None:
    packed = packed_rows(ARRAY, start=6)
    check_packed(packed, ARRAY, "int", 6, 12)
    with pytest.raises(CorruptBlockError, match=r"its row ids are not 0\.\.5"):
        check_packed(packed, ARRAY, "int", 0, 6)
    with pytest.raises(CorruptBlockError, match="it holds 6 rows, the block has 4"):
        check_packed(packed, ARRAY, "int", 6, 10)
    with pytest.raises(CorruptBlockError, match="bytes of rows, expected"):
        check_packed(packed, ARRAY, "none", 6, 12)  # read as another table's layout


def _forged(packed: bytes, position: int, value: bytes) -> bytes:
    """``packed`` with ``value`` written at ``position`` and a checksum that matches again (what only someone who
    can write the cache could do)."""
    body = bytearray(packed)
    body[position : position + len(value)] = value
    return bytes(body[:4]) + xxhash.xxh3_64_intdigest(bytes(body[12:])).to_bytes(8, "little") + bytes(body[12:])


@pytest.mark.parametrize("codec", [VARLEN, TEXT, BYTES], ids=lambda c: c.kind)
def test_offsets_that_leave_the_value_are_refused_even_with_a_valid_checksum(codec: FeatureCodec) -> None:
    packed = packed_rows(codec)
    offsets_at = 24 + 6 * 8 * 2
    for offsets in ([0, 5, 3, 9, 12, 15, 18], [0, 1, 2, 3, 4, 5, 1 << 40], [7, 8, 9, 10, 11, 12, 13]):
        forged = _forged(packed, offsets_at, np.array(offsets, dtype="<i8").tobytes())
        with pytest.raises(CorruptBlockError, match="row offsets"):
            check_packed(forged, codec, "int", 0, 6)


def test_forged_text_that_is_not_utf8_is_refused_when_read() -> None:
    packed = packed_rows(TEXT)
    payload_at = 24 + 6 * 8 * 2 + 7 * 8
    forged = _forged(packed, payload_at, b"\xff")
    check_packed(forged, TEXT, "int", 0, 6)
    with pytest.raises(CorruptBlockError, match="not UTF-8"):
        take_packed(forged, TEXT, "int", np.array([0]))


def _without_flat(block: Block) -> Block:
    """The same rows as a block built by hand: packed the way every block was before blocks had a flat form."""
    features = block.features
    if isinstance(features, np.ndarray):
        features = features.copy()
    elif isinstance(features, Ragged):
        features = Ragged(features.values.copy(), features.offsets.copy())
    else:
        features = list(features)
    return Block(block.row_ids.copy(), features, None if block.labels is None else block.labels.copy())


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
@pytest.mark.parametrize("kind", ["int", "float", "none"])
def test_a_decoded_block_is_packed_in_place_byte_for_byte(codec: FeatureCodec, kind: str) -> None:
    """The flat form a block is decoded into is the cache value: the same bytes packing builds (so caches written
    before stay valid), sealed in place without a copy."""
    block = block_from_rows(rows_for(codec, 9, kind != "none", start=200), codec, kind, "t")
    packed = pack_block(block, codec, kind)
    assert packed is block.flat
    assert bytes(packed) == pack_block(_without_flat(block), codec, kind)
    check_packed(packed, codec, kind, 200, 209)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
def test_packed_views_hold_the_rows_take_packed_copies(codec: FeatureCodec) -> None:
    packed = bytes(packed_rows(codec, 8))
    index = np.array([7, 0, 3, 3, 5])
    taken = take_packed(packed, codec, "int", index)
    part = packed_views(memoryview(packed), codec, "int")
    if codec.kind in ("text", "bytes"):
        assert part is None  # decoded row by row: only the rows asked for, through take_packed
    else:
        assert part is not None
        assert part.row_ids[index].tolist() == taken.row_ids.tolist()
        assert part.labels[index].tolist() == taken.labels.tolist()
        got = part.features[index] if isinstance(part.features, np.ndarray) else [part.features[i] for i in index]
        assert features_equal(list(got), list(taken.features))
    unpacked = unpack_block(packed, codec, "int")
    decoded = block_from_rows(rows_for(codec, 8), codec, "int", "t")
    assert features_equal(list(unpacked.features), list(decoded.features))
