"""Blocks: database rows decoded into columnar data (bad rows named), and the packed form the cache stores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lightning_dm8 import InvalidDatasetError
from lightning_dm8.tables.block import Block, assemble, block_from_rows, group_by_block, pack_block, unpack_block
from lightning_dm8.tables.codecs import FeatureCodec

ARRAY = FeatureCodec("array", "<i2", (2, 2))
VARLEN = FeatureCodec("varlen", "<i8")
TEXT = FeatureCodec("text")
BYTES = FeatureCodec("bytes")
NUMERIC = FeatureCodec("numeric", columns=("a", "b"))


def rows_for(codec: FeatureCodec, n: int, labelled: bool = True, start: int = 0) -> list[tuple[Any, ...]]:
    """Database rows ``(row_id, *features, [label])`` as a driver returns them."""
    rows = []
    for i in range(start, start + n):
        if codec.kind == "array":
            values: tuple[Any, ...] = (np.full((2, 2), i, np.int16).tobytes(),)
        elif codec.kind == "varlen":
            values = (np.arange(i, dtype=np.int64).tobytes(),)
        elif codec.kind == "text":
            values = (f"样本 {i} 😀",)
        elif codec.kind == "bytes":
            values = (bytes([i]) * i,)
        else:
            values = (float(i), -float(i))
        rows.append((i, *values, i * 10) if labelled else (i, *values))
    return rows


def features_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return len(a) == len(b) and all(features_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(a, b))


@pytest.mark.parametrize("codec", [ARRAY, VARLEN, TEXT, BYTES, NUMERIC], ids=lambda c: c.kind)
@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_decode_and_pack_round_trip(codec: FeatureCodec, labelled: bool) -> None:
    kind = "int" if labelled else "none"
    block = block_from_rows(rows_for(codec, 6, labelled), codec, kind, "t")
    assert block.row_ids.tolist() == list(range(6)) and len(block) == 6
    assert (block.labels is None) == (not labelled)
    if labelled:
        assert block.labels.dtype == np.int64 and block.labels.tolist() == [0, 10, 20, 30, 40, 50]
    unpacked = unpack_block(pack_block(block, codec, kind), codec, kind)
    assert unpacked.row_ids.tolist() == block.row_ids.tolist()
    assert (unpacked.labels is None and block.labels is None) or unpacked.labels.tolist() == block.labels.tolist()
    assert features_equal(unpacked.features, block.features)


def test_decoded_values() -> None:
    assert block_from_rows(rows_for(ARRAY, 3), ARRAY, "int", "t").features[2].tolist() == [[2, 2], [2, 2]]
    assert block_from_rows(rows_for(VARLEN, 4), VARLEN, "int", "t").features[3].tolist() == [0, 1, 2]
    assert block_from_rows(rows_for(TEXT, 2), TEXT, "int", "t").features == ["样本 0 😀", "样本 1 😀"]
    numeric = block_from_rows(rows_for(NUMERIC, 3), NUMERIC, "float", "t")
    assert numeric.features.dtype == np.float32 and numeric.features.tolist() == [[0, 0], [1, -1], [2, -2]]
    assert numeric.labels.dtype == np.float64


def test_float_labels_pack_exactly() -> None:
    rows = [(0, 1.0, 2.0, 0.1), (1, 3.0, 4.0, 1 / 3)]
    block = block_from_rows(rows, NUMERIC, "float", "t")
    assert unpack_block(pack_block(block, NUMERIC, "float"), NUMERIC, "float").labels.tolist() == [0.1, 1 / 3]


def _with(rows: list[tuple[Any, ...]], index: int, position: int, value: Any) -> list[tuple[Any, ...]]:
    row = list(rows[index])
    row[position] = value
    return [*rows[:index], tuple(row), *rows[index + 1:]]


@pytest.mark.parametrize(
    ("codec", "position", "value", "message"),
    [
        (ARRAY, 2, None, r"table 'data', row_id 13: the label is NULL; fix or delete that row"),
        (ARRAY, 1, None, r"table 'data', row_id 13: the features are NULL"),
        (NUMERIC, 2, None, r"table 'data', row_id 13: the features are NULL"),
        (ARRAY, 1, b"\x00" * 7, r"table 'data', row_id 13: features hold 7 bytes, expected 8 \(<i2 \(2, 2\)\); "
                                r"the row is corrupt"),
        (VARLEN, 1, b"\x00" * 9, r"table 'data', row_id 13: 9 bytes is not a whole number of <i8 items"),
    ],
    ids=["null-label", "null-features", "null-numeric", "short", "misaligned"],
)
def test_bad_rows_are_named(codec: FeatureCodec, position: int, value: Any, message: str) -> None:
    rows = _with(rows_for(codec, 5, start=10), 3, position, value)
    with pytest.raises(InvalidDatasetError, match=message):
        block_from_rows(rows, codec, "int", "data")


def test_take_and_concat() -> None:
    arrays = block_from_rows(rows_for(ARRAY, 6), ARRAY, "int", "t")
    texts = block_from_rows(rows_for(TEXT, 6), TEXT, "int", "t")
    index = np.array([4, 0, 2])
    for block in (arrays, texts):
        taken = block.take(index)
        assert taken.row_ids.tolist() == [4, 0, 2] and taken.labels.tolist() == [40, 0, 20]
        assert features_equal(taken.features, [block.features[i] for i in (4, 0, 2)] if isinstance(
            block.features, list) else block.features[index])
        joined = Block.concat([block.take(np.arange(3)), block.take(np.arange(3, 6))])
        assert joined.row_ids.tolist() == list(range(6)) and features_equal(joined.features, block.features)
    assert Block.concat([arrays]) is arrays


def test_unpack_refuses_other_values() -> None:
    with pytest.raises(ValueError, match="not a packed block"):
        unpack_block(b"XXXX" + bytes(8), ARRAY, "int")


@pytest.mark.parametrize("codec", [ARRAY, VARLEN, TEXT], ids=lambda c: c.kind)
@pytest.mark.parametrize("n_parts", [1, 3])
def test_assemble_puts_each_part_at_its_positions(codec: FeatureCodec, n_parts: int) -> None:
    block = block_from_rows(rows_for(codec, 12), codec, "int", "t")
    rng = np.random.default_rng(n_parts)
    wanted = rng.permutation(12)[:9]  # rows of the result, in order
    groups = np.array_split(rng.permutation(9), n_parts)
    parts = [block.take(wanted[g]) for g in groups]
    got = assemble(parts, groups, 9)
    expected = block.take(wanted)
    assert got.row_ids.tolist() == wanted.tolist() and got.labels.tolist() == expected.labels.tolist()
    assert features_equal(list(got.features), list(expected.features))


def test_group_by_block_lists_positions_per_block_in_block_order() -> None:
    groups = group_by_block(np.array([25, 3, 17, 9, 30, 1]), 10)
    assert [(b, g.tolist()) for b, g in groups] == [(0, [1, 3, 5]), (1, [2]), (2, [0]), (3, [4])]
