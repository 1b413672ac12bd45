"""Ragged rows (flat values + offsets) against the list of arrays they stand for: take, slices, concat, packing
and the batch tensors built from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_dm8.loading.batches import RaggedBatch, make_batch
from lightning_dm8.loading.cache_format import pack_block, take_packed
from lightning_dm8.tables.block import Block, block_from_rows
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.ragged import Ragged

VARLEN = FeatureCodec("varlen", "<i8")


def rows_of(lengths: list[int]) -> list[np.ndarray]:
    starts = np.cumsum([0, *lengths])
    return [np.arange(a, b, dtype=np.int64) * 7 - 3 for a, b in zip(starts[:-1], starts[1:], strict=True)]


def assert_rows(ragged: Ragged, expected: list[np.ndarray]) -> None:
    assert len(ragged) == len(expected)
    for got, want in zip(ragged, expected, strict=True):
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
    assert [ragged[i].tolist() for i in range(len(expected))] == [w.tolist() for w in expected]


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 9), min_size=1, max_size=30), data=st.data())
def test_take_slice_and_concat_match_the_list_of_arrays(lengths: list[int], data: st.DataObject) -> None:
    rows = rows_of(lengths)
    ragged = Ragged.from_arrays(rows, np.dtype("<i8"))
    assert_rows(ragged, rows)
    index = np.array(data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=40)), dtype=np.int64)
    assert_rows(ragged.take(index), [rows[i] for i in index])
    start = data.draw(st.integers(0, len(rows)))
    stop = data.draw(st.integers(start, len(rows)))
    assert_rows(ragged[start:stop], rows[start:stop])
    assert_rows(Ragged.concat([ragged[:start], ragged[start:stop], ragged[stop:]]), rows)


def test_a_slice_shares_the_values_and_refuses_a_step() -> None:
    ragged = Ragged.from_arrays(rows_of([2, 3, 4]), np.dtype("<i8"))
    part = ragged[1:3]
    assert np.shares_memory(part.values, ragged.values) and part.offsets.tolist() == [0, 3, 7]
    with pytest.raises(ValueError, match="step 1.*take"):
        ragged[::2]


def test_database_rows_decode_pack_and_take_as_ragged() -> None:
    rows = rows_of([3, 0, 5, 1, 4])
    block = block_from_rows([(i, r.tobytes(), i) for i, r in enumerate(rows)], VARLEN, "int", "t")
    assert isinstance(block.features, Ragged)
    assert_rows(block.features, rows)
    packed = pack_block(block, VARLEN, "int")
    index = np.array([4, 1, 1, 0])
    taken = take_packed(memoryview(packed), VARLEN, "int", index)
    assert taken.row_ids.tolist() == [4, 1, 1, 0] and taken.labels.tolist() == [4, 1, 1, 0]
    assert_rows(taken.features, [rows[i] for i in index])
    assert_rows(Block.concat([block.take(np.array([0, 1])), block.take(np.array([2, 3, 4]))]).features, rows)


def test_a_ragged_batch_is_one_tensor_per_row_sharing_one_buffer() -> None:
    rows = rows_of([2, 5, 0, 3])
    block = Block(np.arange(4), Ragged.from_arrays(rows, np.dtype("<i8")), np.array([1, 0, 1, 0]))
    features, labels = make_batch(block, None, None)
    assert isinstance(features, RaggedBatch) and labels.tolist() == [1, 0, 1, 0]
    assert [t.tolist() for t in features] == [r.tolist() for r in rows]
    assert all(t.dtype == torch.int64 for t in features)
    assert features[1].untyped_storage().data_ptr() == features[3].untyped_storage().data_ptr()


def test_rows_read_only_from_the_database_become_writable_tensors() -> None:
    rows = rows_of([2, 3])
    block = block_from_rows([(i, r.tobytes(), i) for i, r in enumerate(rows)], VARLEN, "int", "t")
    assert not block.features.values.flags.writeable
    features, _ = make_batch(block, None, None)
    features[0][0] = 99  # a copy, not the driver's bytes
    assert block.features[0][0] == rows[0][0]
