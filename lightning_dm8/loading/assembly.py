"""Batch assembly: rows of several blocks gathered into one block in the order an epoch delivers them.

A batch (or a warm epoch's window of batches) touches rows of several blocks; :func:`group_by_block` says which
positions each block supplies, :class:`Assembler` writes each block's rows straight to those positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lightning_dm8.tables.block import Block


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
    for part, group in zip(parts, groups, strict=True):
        assembler.add(part, group)
    return assembler.result()


def group_by_block(row_ids: np.ndarray, block_size: int) -> list[tuple[int, np.ndarray]]:
    """``(block, positions of row_ids in that block)`` for each block the rows fall in, in block order."""
    blocks = row_ids // block_size
    order = np.argsort(blocks, kind="stable")
    cut = np.flatnonzero(np.diff(blocks[order])) + 1
    return [(int(blocks[group[0]]), group) for group in np.split(order, cut)]
