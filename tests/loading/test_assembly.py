"""Batch assembly: rows of several blocks put at their positions in one block, and the grouping of row ids by
block."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from block_rows import ARRAY, CODECS, TEXT, VARLEN, features_equal, rows_for

from lightning_dm8.loading.assembly import assemble, assemble_rows, group_by_block
from lightning_dm8.tables.block import Block, block_from_rows
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.columns import Columns
from lightning_dm8.tables.ragged import Ragged


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


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_rows_go_from_their_blocks_straight_to_their_places(codec: FeatureCodec, labelled: bool) -> None:
    """assemble_rows (one copy per row, no taken part in between) gives what take-then-assemble gave, leaves the
    blocks alone and hands out arrays of its own."""
    kind = "int" if labelled else "none"
    blocks = [block_from_rows(rows_for(codec, 10, labelled, start=10 * b), codec, kind, "t") for b in range(3)]
    whole = block_from_rows(rows_for(codec, 30, labelled), codec, kind, "t")
    rng = np.random.default_rng(7)
    wanted = rng.permutation(30)[:17]
    groups = group_by_block(wanted, 10)
    got = assemble_rows([blocks[b] for b, _ in groups], [wanted[g] - 10 * b for b, g in groups],
                        [g for _, g in groups], len(wanted))
    expected = whole.take(wanted)
    assert got.row_ids.tolist() == wanted.tolist()
    assert (got.labels is None) == (not labelled)
    if labelled:
        assert got.labels.tolist() == expected.labels.tolist()
    assert features_equal(list(got.features), list(expected.features))
    values = got.features.values if isinstance(got.features, Ragged) else got.features
    if isinstance(values, np.ndarray):
        assert values.flags.writeable and not any(np.shares_memory(values, b.flat) for b in blocks if b.flat)


def record_block(start: int, n: int, targets: str) -> Block:
    """A record block by hand: an image, variable-length tokens, text, a number per row; one vector target or two."""
    ids = np.arange(start, start + n)
    features = Columns({
        "image": np.stack([np.full((2, 3), i, np.uint8) for i in ids]),
        "tokens": Ragged.from_arrays([np.arange(i % 4, dtype=np.int32) + i for i in ids], np.dtype(np.int32)),
        "title": [f"row {i}" for i in ids], "price": ids * 0.5,
    })
    vector = np.stack([ids, -ids]).T.astype(np.float32)
    labels: Any = vector if targets == "vector" else Columns({"y": ids.copy(), "multi": vector})
    return Block(ids, features, labels)


def columns_equal(a: Any, b: Any) -> bool:
    if isinstance(b, Columns):
        return isinstance(a, Columns) and list(a) == list(b) and all(columns_equal(a[k], b[k]) for k in b)
    if isinstance(b, Ragged):
        return isinstance(a, Ragged) and features_equal(list(a), list(b))
    return features_equal(a, b)


@pytest.mark.parametrize("targets", ["vector", "columns"])
def test_record_rows_go_from_their_blocks_straight_to_their_places(targets: str) -> None:
    """Each column of a record (and each of its targets) is gathered as a single column is."""
    blocks = [record_block(10 * b, 10, targets) for b in range(3)]
    whole = Block.concat([record_block(0, 30, targets)])
    wanted = np.random.default_rng(3).permutation(30)[:17]
    groups = group_by_block(wanted, 10)
    got = assemble_rows([blocks[b] for b, _ in groups], [wanted[g] - 10 * b for b, g in groups],
                        [g for _, g in groups], len(wanted))
    expected = whole.take(wanted)
    assert got.row_ids.tolist() == wanted.tolist()
    assert columns_equal(got.features, expected.features) and columns_equal(got.labels, expected.labels)
    assert got.features["image"].flags.writeable and got.features["price"].dtype == np.float64
