"""write_query: materialise a dataset table from a SELECT over the user's own tables.

The query runs on the server, ordered deterministically, and its rows stream through the same writer path
as arrays do, numbered densely 0..N-1 in that order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from lightning_dm8.db.engine import Database
from lightning_dm8.db.schema import FEATURES, LABEL, ROW_ID
from lightning_dm8.errors import InvalidInputError
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind, infer_varlen_codec
from lightning_dm8.tables.dataset_table import as_database
from lightning_dm8.tables.registry import DatasetInfo
from lightning_dm8.tables.writer import IfExists, write_rows


def _source(sql: str) -> sa.Subquery:
    return sa.text(sql).columns().subquery("ldm8_src")


def query_columns(db: Database, sql: str) -> list[str]:
    """The column names a query returns, asked of the server without fetching rows."""
    probe = sa.select(sa.text("*")).select_from(_source(sql)).where(sa.false())
    with db.connect("inspect the source query") as conn:
        return list(conn.execute(probe).keys())


def _codec(first: tuple[Any, ...], columns: Sequence[str], dtype: str | None, shape: Sequence[int] | None) -> FeatureCodec:
    if len(columns) > 1 or isinstance(first[0], (int, float, np.number)) or type(first[0]).__name__ == "Decimal":
        bad = [c for c, v in zip(columns, first) if not isinstance(v, (int, float, np.number)) and
               type(v).__name__ != "Decimal"]
        if bad:
            nulls = [c for c, v in zip(columns, first) if v is None]
            hint = f" (NULL in the first row: {nulls}; filter out or COALESCE NULLs)" if nulls else ""
            raise InvalidInputError(
                f"feature columns {bad} are not numeric{hint}; a query with several feature columns must return "
                f"numbers only (or select one binary/text column)"
            )
        clash = [c for c in columns if c.lower() in (ROW_ID, LABEL, FEATURES)]
        if clash:
            raise InvalidInputError(f"feature columns may not be named {clash}; rename them in the query (AS ...)")
        return FeatureCodec("numeric", columns=tuple(columns))
    value = first[0]
    if isinstance(value, str):
        return FeatureCodec("text")
    if dtype is None:
        return FeatureCodec("bytes")
    if shape is None:
        return infer_varlen_codec([np.zeros(0, dtype=dtype)])
    return FeatureCodec("array", np.dtype(dtype).str, tuple(int(s) for s in shape))


def write_query(
    url: str | Database,
    name: str,
    sql: str,
    *,
    label_column: str | None = "label",
    order_by: Sequence[str] | None = None,
    dtype: str | None = None,
    shape: Sequence[int] | None = None,
    if_exists: IfExists = "fail",
    progress: bool = True,
) -> DatasetInfo:
    """Materialise dataset table ``name`` from the rows of ``sql``.

    Args:
        sql: a SELECT over the user's tables; its rows become dataset rows.
        label_column: the query column holding the label (None: unlabelled). Every other column is a feature.
        order_by: query columns that fix the row order; by default all columns, in query order. Give a key when
            the query returns BLOBs (DM8 and MySQL cannot sort by them).
        dtype, shape: how to decode a single binary feature column: with both, fixed-shape arrays; with ``dtype``
            only, variable-length 1-D arrays; with neither, raw bytes. Numeric feature columns need neither.
    """
    db = as_database(url)
    columns = query_columns(db, sql)
    if label_column is not None and label_column not in columns:
        raise InvalidInputError(f"the query has no label column {label_column!r}; its columns are {columns}")
    features = [c for c in columns if c != label_column]
    if not features:
        raise InvalidInputError(f"the query returns no feature column besides the label; its columns are {columns}")
    keys = list(order_by) if order_by else columns
    unknown = [k for k in keys if k not in columns]
    if unknown:
        raise InvalidInputError(f"order_by names {unknown}, which the query does not return; its columns are {columns}")
    source = _source(sql)
    ordered = sa.select(*[sa.column(c) for c in features + ([label_column] if label_column else [])]).select_from(
        source
    ).order_by(*[sa.column(k) for k in keys])
    with db.connect("count the source query") as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(source)).scalar_one()
    if total == 0:
        raise InvalidInputError(f"no rows to write into dataset {name!r}: the query returned no rows")
    with db.connect("read the source query") as conn:
        first = conn.execute(ordered.limit(1)).one()
    codec = _codec(tuple(first[: len(features)]), features, dtype, shape)
    label_kind: LabelKind = "none" if label_column is None else _label_kind(first[len(features)])
    width = len(features)

    def samples() -> Iterator[tuple[Any, Any]]:
        with db.connect("read the source query") as conn:
            result = conn.execution_options(stream_results=True, yield_per=2000).execute(ordered)
            for i, row in enumerate(result):
                values = tuple(row[:width])
                features = values if codec.kind == "numeric" else _stored_value(values[0], codec, i)
                yield features, (row[width] if label_column else None)

    return write_rows(db, name, codec, label_kind, samples(), total=total, if_exists=if_exists, progress=progress)


def _stored_value(value: Any, codec: FeatureCodec, i: int) -> Any:
    """A binary query value as the array the codec encodes: the query returns raw bytes, not arrays."""
    if codec.kind not in ("array", "varlen"):
        return value
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"query row {i}: the feature value is {type(value).__name__}, not binary; "
                                f"dtype/shape apply to a single BLOB/bytes column")
    data = bytes(value)
    itemsize = codec.np_dtype.itemsize
    expected = codec.fixed_size
    if (expected is not None and len(data) != expected) or len(data) % itemsize:
        need = f"{expected} bytes ({codec.dtype} {codec.shape})" if expected is not None else f"a multiple of {itemsize}"
        raise InvalidInputError(f"query row {i}: the feature value holds {len(data)} bytes, expected {need}")
    array = np.frombuffer(data, dtype=codec.np_dtype)
    return array.reshape(codec.shape) if codec.kind == "array" else array


def _label_kind(value: Any) -> LabelKind:
    if isinstance(value, (bool, int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)) or type(value).__name__ == "Decimal":
        return "float"
    raise InvalidInputError(f"label values must be integers or floats; the query returned {type(value).__name__}")
