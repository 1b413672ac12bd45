"""Blocks: database rows decoded into columnar data (bad rows named), taken and joined."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from block_rows import ARRAY, CODECS, NUMERIC, TEXT, VARLEN, features_equal, rows_for

from lightning_dm8 import InvalidDatasetError
from lightning_dm8.tables.block import Block, block_from_rows
from lightning_dm8.tables.codecs import FeatureCodec


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_decode_rows_ids_and_labels(codec: FeatureCodec, labelled: bool) -> None:
    kind = "int" if labelled else "none"
    block = block_from_rows(rows_for(codec, 6, labelled), codec, kind, "t")
    assert block.row_ids.tolist() == list(range(6)) and len(block) == 6 and len(block.features) == 6
    assert (block.labels is None) == (not labelled)
    if labelled:
        assert block.labels.dtype == np.int64 and block.labels.tolist() == [0, 10, 20, 30, 40, 50]


def test_decoded_values() -> None:
    assert block_from_rows(rows_for(ARRAY, 3), ARRAY, "int", "t").features[2].tolist() == [[2, 2], [2, 2]]
    assert block_from_rows(rows_for(VARLEN, 4), VARLEN, "int", "t").features[3].tolist() == [0, 1, 2]
    assert block_from_rows(rows_for(TEXT, 2), TEXT, "int", "t").features == ["样本 0 😀", "样本 1 😀"]
    numeric = block_from_rows(rows_for(NUMERIC, 3), NUMERIC, "float", "t")
    assert numeric.features.dtype == np.float32 and numeric.features.tolist() == [[0, 0], [1, -1], [2, -2]]
    assert numeric.labels.dtype == np.float64


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


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
@pytest.mark.parametrize("kind", ["int", "float", "none"])
def test_decoded_blocks_are_views_of_one_flat_buffer(codec: FeatureCodec, kind: str) -> None:
    """Fixed and variable-length features are read-only views of the block's flat form (nothing writes through a
    block into what the cache stores); row ids and labels are arrays of their own."""
    block = block_from_rows(rows_for(codec, 7, kind != "none", start=3), codec, kind, "t")
    assert isinstance(block.flat, bytearray)
    assert block.row_ids.tolist() == list(range(3, 10)) and block.row_ids.dtype == np.int64
    if kind != "none":
        assert block.labels.dtype == (np.int64 if kind == "int" else np.float64)
        assert block.labels.tolist() == [10 * i for i in range(3, 10)]
    values = block.features.values if codec.kind == "varlen" else block.features
    if isinstance(values, np.ndarray):
        assert not values.flags.writeable and np.shares_memory(values, np.frombuffer(block.flat, np.uint8))


def test_sizes_are_checked_row_by_row() -> None:
    """One row too long and the next too short add up to the right total: still the first of them is named."""
    rows = rows_for(ARRAY, 4, start=20)
    rows = _with(_with(rows, 1, 1, b"\x00" * 9), 2, 1, b"\x00" * 7)
    with pytest.raises(InvalidDatasetError, match=r"row_id 21: features hold 9 bytes, expected 8"):
        block_from_rows(rows, ARRAY, "int", "data")


def test_driver_buffers_other_than_bytes_decode_the_same() -> None:
    rows = rows_for(ARRAY, 3)
    as_views = [(i, memoryview(bytearray(f)), y) for i, f, y in rows]
    a, b = block_from_rows(rows, ARRAY, "int", "t"), block_from_rows(as_views, ARRAY, "int", "t")
    assert features_equal(a.features, b.features) and bytes(a.flat or b"") == bytes(b.flat or b"")
