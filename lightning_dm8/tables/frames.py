"""Columns of a record dataset from what users hold them in: a dict of columns, a pandas DataFrame or a pyarrow
Table.

pandas and pyarrow are optional (``pip install 'lightning-dm8[frames]'``) and never imported here: an object can
only be a DataFrame or a Table when its package is already loaded, so ``sys.modules`` is asked instead.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from lightning_dm8.errors import InvalidInputError
from lightning_dm8.tables.codecs import as_numpy


def as_columns(data: Any) -> dict[str, Any] | None:
    """``data`` as ``{column: values}`` (values an array or a list, indexable by row position) when it is a dict of
    columns, a DataFrame or a pyarrow Table/RecordBatch; None for anything else (a single feature).

    Raises:
        InvalidInputError: a column name is not a ``str``, or a frame's column holds a missing value (named).
    """
    if isinstance(data, Mapping):
        return {_name(name): column_values(name, values) for name, values in data.items()}
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return {_name(name): _pandas_column(str(name), data[name]) for name in data.columns}
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(data, (pyarrow.Table, pyarrow.RecordBatch)):
        return {_name(name): _arrow_column(name, data.column(name)) for name in data.column_names}
    return None


def column_values(name: str, values: Any) -> Any:
    """One column's values, indexable by row position: an array (tensors, Series and Arrow arrays become numpy) or a
    list. A pandas Series is indexed by position, never by its index labels."""
    values = as_numpy(values)
    if isinstance(values, np.ndarray):
        return values
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(values, pandas.Series):
        return _pandas_column(name, values)
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(values, (pyarrow.Array, pyarrow.ChunkedArray)):
        return _arrow_column(name, values)
    return values if isinstance(values, list) else list(values)


def _name(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidInputError(f"column names must be str; got {name!r} ({type(name).__name__}): name the columns "
                                f"(e.g. df.columns = [...])")
    return name


def _pandas_column(name: str, series: Any) -> np.ndarray:
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size:
        _missing(name, int(missing[0]), "df.dropna() or df.fillna(...)")
    return series.to_numpy()


def _arrow_column(name: str, column: Any) -> np.ndarray:
    if column.null_count:
        nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False))
        _missing(name, int(np.flatnonzero(nulls)[0]), "Table.drop_null() or pyarrow.compute.fill_null(...)")
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _missing(name: str, row: int, fix: str) -> NoReturn:
    raise InvalidInputError(f"column {name!r} has a missing value (null/NaN) at row {row}; every row needs a value: "
                            f"drop or fill those rows first ({fix})")
