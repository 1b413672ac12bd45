"""Columns: the named columns of a block of record rows, and the operations every column kind shares.

A column of a block is one of three forms: an array ``(n, ...)`` (fixed-size values: arrays and numbers), a
:class:`~lightning_dm8.tables.ragged.Ragged` (variable-length arrays) or a list (text, bytes). A single-feature
block holds one such column as its features; a record block holds a :class:`Columns` of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lightning_dm8.tables.ragged import Ragged


def take_column(data: Any, index: np.ndarray) -> Any:
    """The rows at positions ``index`` of one column (or of every column of a :class:`Columns`), in that order."""
    if isinstance(data, Columns):
        return Columns({name: take_column(column, index) for name, column in data.items()})
    if isinstance(data, np.ndarray):
        return data[index]
    if isinstance(data, Ragged):
        return data.take(index)
    return [data[i] for i in index.tolist()]


def slice_column(data: Any, part: slice) -> Any:
    """The contiguous rows ``part`` (step 1) of one column (or of every column of a :class:`Columns`): views of the
    arrays, not copies."""
    if isinstance(data, Columns):
        return Columns({name: column[part] for name, column in data.items()})
    return data[part]


def concat_column(parts: Sequence[Any]) -> Any:
    """One column holding the rows of ``parts`` (columns of one form) in order."""
    first = parts[0]
    if isinstance(first, Columns):
        return Columns({name: concat_column([p[name] for p in parts]) for name in first})
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, Ragged):
        return Ragged.concat(parts)
    return [value for part in parts for value in part]


def column_value(data: Any, i: int) -> Any:
    """Row ``i`` of one column as a sample's value: a Python number for a column of numbers, an array (a copy) for
    arrays, ``str`` or ``bytes`` for text and bytes, and a dict of those for a :class:`Columns`."""
    if isinstance(data, Columns):
        return {name: column_value(column, i) for name, column in data.items()}
    if isinstance(data, np.ndarray):
        return data[i].item() if data.ndim == 1 else data[i].copy()
    if isinstance(data, Ragged):
        return data[i].copy()
    return data[i]


def column_nbytes(data: Any) -> int:
    """Bytes of the values of one column (or of every column of a :class:`Columns`)."""
    if isinstance(data, Columns):
        return sum(column_nbytes(column) for column in data.values())
    if isinstance(data, (np.ndarray, Ragged)):
        return int(data.nbytes)
    return sum(len(value) for value in data)


class Columns(dict[str, Any]):
    """The named columns of a block of record rows (its features, or its targets when there are several), in
    storage order; each column holds one value per row of the block."""

    def __repr__(self) -> str:
        return f"Columns({', '.join(self)})"
