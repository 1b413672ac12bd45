"""Batch assembly: rows of several blocks gathered into one block in the order an epoch delivers them.

A batch (or a warm epoch's window of batches) touches rows of several blocks; :func:`group_by_block` says which
positions each block supplies, :class:`Assembler` copies each block's rows straight from the block (a decoded
block, or a cached block's bytes read in place) to those positions: one gather per block, batch and column, with no
intermediate block of the taken rows. A record block's columns are gathered one by one, as a single column is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lightning_dm8.tables.block import Block
from lightning_dm8.tables.columns import Columns
from lightning_dm8.tables.ragged import Ragged, offsets_of


def _rows_view(features: np.ndarray) -> np.ndarray:
    """Fixed-size rows as a 1-D array of one opaque item per row (when they are contiguous), so a gather copies each
    row with one ``memcpy`` instead of element by element."""
    n = features.shape[0]
    if features.ndim < 2 or not features.flags.c_contiguous or features.size == 0:
        return features
    return features.reshape(n, -1).view(np.dtype((np.void, features.itemsize * (features.size // n)))).reshape(n)


class _Column:
    """One column of the block being built: fixed-size rows are written straight to their places as parts arrive (so
    a part need not outlive its call); variable-length rows (a :class:`Ragged`) are gathered once at the end,
    straight from their parts; text and bytes (lists) item by item."""

    __slots__ = ("n", "_array", "_rows", "_later")

    def __init__(self, n: int) -> None:
        self.n = n
        self._array: np.ndarray | None = None
        self._rows: np.ndarray | None = None  # ``_array`` as one opaque item per row
        self._later: list[tuple[Any, np.ndarray, np.ndarray]] = []  # ragged or list parts: (part, positions, group)

    def add(self, data: Any, positions: np.ndarray, group: np.ndarray) -> None:
        if not isinstance(data, np.ndarray):
            self._later.append((data, positions, group))
            return
        if self._array is None:
            self._array = np.empty((self.n, *data.shape[1:]), dtype=data.dtype)
            self._rows = _rows_view(self._array)
        assert self._rows is not None  # set with _array
        rows = _rows_view(data)
        if rows.ndim == self._rows.ndim:
            self._rows[group] = rows[positions]
        else:  # a part whose rows are not contiguous: copied element by element
            self._array[group] = data[positions]

    def result(self) -> Any:
        if self._array is not None or not self._later:
            return self._array if self._array is not None else np.empty((0,))
        if isinstance(self._later[0][0], Ragged):
            return _gather_ragged(self._later, self.n)
        out: list[Any] = [None] * self.n
        for items, positions, group in self._later:
            for at, i in zip(group.tolist(), positions.tolist(), strict=True):
                out[at] = items[i]
        return out


class _Record:
    """The named columns of a record block being built: one :class:`_Column` each."""

    __slots__ = ("_columns",)

    def __init__(self, n: int, names: Iterable[str]) -> None:
        self._columns = {name: _Column(n) for name in names}

    def add(self, data: Columns, positions: np.ndarray, group: np.ndarray) -> None:
        for name, column in self._columns.items():
            column.add(data[name], positions, group)

    def result(self) -> Columns:
        return Columns({name: column.result() for name, column in self._columns.items()})


def _gatherer(data: Any, n: int) -> _Column | _Record:
    return _Record(n, data) if isinstance(data, Columns) else _Column(n)


class Assembler:
    """Builds a block of ``n`` rows part by part: :meth:`add_rows` puts rows ``positions`` of a block at positions
    ``group`` (the groups partition ``0..n-1``); :meth:`add` puts all of a part's rows. Row ids, features, labels and
    each column of a record are gathered alike (:class:`_Column`): each row copied once, from its part to its
    place."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._row_ids: np.ndarray | None = None
        self._features: _Column | _Record | None = None
        self._labels: _Column | _Record | None = None

    def add(self, part: Block, group: np.ndarray) -> None:
        self.add_rows(part, np.arange(len(group)), group)

    def add_rows(self, part: Block, positions: np.ndarray, group: np.ndarray) -> None:
        if self._row_ids is None:
            self._row_ids = np.empty(self.n, dtype=np.int64)
            self._features = _gatherer(part.features, self.n)
            self._labels = None if part.labels is None else _gatherer(part.labels, self.n)
        self._row_ids[group] = part.row_ids[positions]
        assert self._features is not None  # set with _row_ids
        self._features.add(part.features, positions, group)
        if self._labels is not None:
            self._labels.add(part.labels, positions, group)

    def result(self) -> Block:
        if self._row_ids is None or self._features is None:
            return Block(np.empty(0, dtype=np.int64), np.empty((0,)), None)
        return Block(self._row_ids, self._features.result(),
                     None if self._labels is None else self._labels.result())


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
