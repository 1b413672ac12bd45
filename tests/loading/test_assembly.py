"""Batch assembly: rows of several blocks put at their positions in one block, and the grouping of row ids by
block."""

from __future__ import annotations

import numpy as np
import pytest
from block_rows import ARRAY, TEXT, VARLEN, features_equal, rows_for

from lightning_dm8.loading.assembly import assemble, group_by_block
from lightning_dm8.tables.block import block_from_rows
from lightning_dm8.tables.codecs import FeatureCodec


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
