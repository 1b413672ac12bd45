"""Ragged: variable-length rows (token ids, say) as one flat array plus offsets.

A list of small arrays costs a Python object, a slice and a copy per row at every step: decoding, gathering a
shuffled batch, building its tensors. Held flat, each step is a handful of vectorised numpy calls per batch.
It reads like a sequence of 1-D arrays: ``len``, ``ragged[i]`` (a view of row ``i``) and iteration.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np


class Ragged:
    """Rows ``values[offsets[i]:offsets[i + 1]]``; ``offsets`` has one entry more than there are rows."""

    __slots__ = ("values", "offsets")

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.values = values
        self.offsets = offsets

    @classmethod
    def from_arrays(cls, rows: Sequence[np.ndarray], dtype: np.dtype) -> Ragged:
        values = np.concatenate(rows).astype(dtype, copy=False) if len(rows) else np.empty(0, dtype)
        return cls(values, offsets_of([len(r) for r in rows]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, i: slice) -> Ragged: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | Ragged:
        """Row ``i`` as a view, or a contiguous run of rows (step 1) as a Ragged sharing these values."""
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                raise ValueError("a Ragged slice takes every row between its bounds (step 1); use take() otherwise")
            offsets = self.offsets[start : max(start, stop) + 1]
            return Ragged(self.values[offsets[0] : offsets[-1]], offsets - offsets[0])
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        bounds = self.offsets.tolist()
        return (self.values[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, index: np.ndarray) -> Ragged:
        """The rows at positions ``index``, in that order, copied into a new flat array."""
        return Ragged(*gather(self.values, self.offsets[:-1], self.offsets[1:], index))

    @staticmethod
    def concat(parts: Sequence[Ragged]) -> Ragged:
        values = np.concatenate([p.values for p in parts])
        ends = np.cumsum([p.offsets[-1] for p in parts])
        shifts = np.concatenate(([0], ends[:-1]))
        offsets = np.concatenate([p.offsets[:-1] + s for p, s in zip(parts, shifts, strict=True)] + [ends[-1:]])
        return Ragged(values, offsets.astype(np.int64))


def gather(
    values: np.ndarray, starts: np.ndarray, stops: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flat values and offsets of rows ``values[starts[i]:stops[i]]`` for ``i`` in ``index``: one vectorised copy."""
    lo, hi = starts[index], stops[index]
    lengths = hi - lo
    offsets = offsets_of(lengths)
    # Element k of the output comes from lo[row] + (k - offsets[row]) of the input.
    source = np.repeat(lo - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    return values[source], offsets


def offsets_of(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """Row offsets (int64, one more than there are rows) for rows of these lengths."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets
