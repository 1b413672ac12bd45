"""Batch assembly: rows of several blocks gathered into one block in the order an epoch delivers them.

A batch (or a warm epoch's window of batches) touches rows of several blocks; :func:`group_by_block` says which
positions each block supplies, :class:`Assembler` copies each block's rows straight from the block (a decoded
block, or a cached block's bytes read in place) to those positions: one gather per block and batch, with no
intermediate block of the taken rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lightning_dm8.tables.block import Block
from lightning_dm8.tables.ragged import Ragged, offsets_of


def _rows_view(features: np.ndarray) -> np.ndarray:
    """Fixed-size rows as a 1-D array of one opaque item per row (when they are contiguous), so a gather copies each
    row with one ``memcpy`` instead of element by element."""
    n = features.shape[0]
    if features.ndim < 2 or not features.flags.c_contiguous or features.size == 0:
        return features
    return features.reshape(n, -1).view(np.dtype((np.void, features.itemsize * (features.size // n)))).reshape(n)


class Assembler:
    """Builds a block of ``n`` rows part by part: :meth:`add_rows` puts rows ``positions`` of a block at positions
    ``group`` (the groups partition ``0..n-1``); :meth:`add` puts all of a part's rows. Fixed-size features, row
    ids and labels are written straight to their places, so a part need not outlive its call; variable-length
    features are gathered once at the end, straight from their parts; text and bytes are lists."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._row_ids: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._features: np.ndarray | None = None
        self._rows: np.ndarray | None = None  # ``_features`` as one opaque item per row
        self._later: list[tuple[Any, np.ndarray, np.ndarray]] = []  # ragged or list features: (part, positions, group)
        self._labelled = False

    def add(self, part: Block, group: np.ndarray) -> None:
        self.add_rows(part, np.arange(len(group)), group)

    def add_rows(self, part: Block, positions: np.ndarray, group: np.ndarray) -> None:
        if self._row_ids is None:
            self._row_ids = np.empty(self.n, dtype=np.int64)
            self._labelled = part.labels is not None
            if part.labels is not None:
                self._labels = np.empty(self.n, dtype=part.labels.dtype)
        self._row_ids[group] = part.row_ids[positions]
        if self._labels is not None and part.labels is not None:
            self._labels[group] = part.labels[positions]
        features = part.features
        if not isinstance(features, np.ndarray):
            self._later.append((features, positions, group))
            return
        if self._features is None:
            self._features = np.empty((self.n, *features.shape[1:]), dtype=features.dtype)
            self._rows = _rows_view(self._features)
        assert self._rows is not None  # set with _features
        self._rows[group] = _rows_view(features)[positions]

    def result(self) -> Block:
        row_ids = self._row_ids if self._row_ids is not None else np.empty(0, dtype=np.int64)
        if self._features is not None or not self._later:
            features: Any = self._features if self._features is not None else np.empty((0,))
        elif isinstance(self._later[0][0], Ragged):
            features = _gather_ragged(self._later, self.n)
        else:
            out: list[Any] = [None] * self.n
            for items, positions, group in self._later:
                for at, i in zip(group.tolist(), positions.tolist(), strict=True):
                    out[at] = items[i]
            features = out
        return Block(row_ids, features, self._labels if self._labelled else None)


def _gather_ragged(parts: list[tuple[Ragged, np.ndarray, np.ndarray]], n: int) -> Ragged:
    """One flat array of the rows the parts supply, in output order: each part's rows copied once, in place."""
    lengths = np.zeros(n, dtype=np.int64)
    for ragged, positions, group in parts:
        lengths[group] = ragged.offsets[positions + 1] - ragged.offsets[positions]
    offsets = offsets_of(lengths)
    values = np.empty(int(offsets[-1]), dtype=parts[0][0].values.dtype)
    for ragged, positions, group in parts:
        counts = lengths[group]
        total = int(counts.sum())
        if total == 0:
            continue
        # Element k of this part's rows goes from source[k] to target[k]: row starts repeated plus a running index.
        step = np.arange(total, dtype=np.int64) - np.repeat(offsets_of(counts)[:-1], counts)
        source = np.repeat(ragged.offsets[positions], counts) + step
        target = np.repeat(offsets[group], counts) + step
        values[target] = ragged.values[source]
    return Ragged(values, offsets)


def assemble(parts: Sequence[Block], groups: Sequence[np.ndarray], n: int) -> Block:
    """One block of ``n`` rows holding ``parts[i]``'s rows at positions ``groups[i]`` (see :class:`Assembler`)."""
    return assemble_rows(parts, [np.arange(len(g)) for g in groups], groups, n)


def assemble_rows(
    blocks: Sequence[Block], positions: Sequence[np.ndarray], groups: Sequence[np.ndarray], n: int
) -> Block:
    """One new block of ``n`` rows holding rows ``positions[i]`` of ``blocks[i]`` at positions ``groups[i]``: each
    row copied once, from its block to its place (the blocks are left as they are)."""
    assembler = Assembler(n)
    for block, rows, group in zip(blocks, positions, groups, strict=True):
        assembler.add_rows(block, rows, group)
    return assembler.result()


def group_by_block(row_ids: np.ndarray, block_size: int) -> list[tuple[int, np.ndarray]]:
    """``(block, positions of row_ids in that block)`` for each block the rows fall in, in block order."""
    blocks = row_ids // block_size
    order = np.argsort(blocks, kind="stable")
    cut = np.flatnonzero(np.diff(blocks[order])) + 1
    return [(int(blocks[group[0]]), group) for group in np.split(order, cut)]
