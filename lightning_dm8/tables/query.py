"""write_query: materialise a dataset table from a SELECT over the user's own tables.

The query runs on the server, ordered deterministically, and its rows stream through the same writer path
as arrays do, numbered densely 0..N-1 in that order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import sqlalchemy as sa

from lightning_dm8.db.coerce import as_database
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import InvalidInputError
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind, infer_varlen_codec
from lightning_dm8.tables.gc import DEFAULT_KEEP_VERSIONS
from lightning_dm8.tables.registry import DatasetInfo
from lightning_dm8.tables.schema import FEATURES, LABEL, ROW_ID
from lightning_dm8.tables.sql_guard import single_select
from lightning_dm8.tables.writer import IfExists, write_rows


def _source(sql: str) -> sa.Subquery:
    return sa.text(single_select(sql)).columns().subquery("ldm8_src")


@contextmanager
def read_only(db: Database, where: str) -> Iterator[sa.Connection]:
    """A connection whose transaction cannot write (where the backend has read-only transactions), rolled back."""
    enter, leave = db.backend.read_only_statements()
    with db.connect(where) as conn:
        for statement in enter:
            conn.exec_driver_sql(statement)
        try:
            yield conn
        finally:
            conn.rollback()
            for statement in leave:
                conn.exec_driver_sql(statement)
            conn.rollback()


def query_columns(db: Database, sql: str) -> list[str]:
    """The column names a query returns, asked of the server without fetching rows."""
    probe = sa.select(sa.text("*")).select_from(_source(sql)).where(sa.false())
    with read_only(db, "inspect the source query") as conn:
        return list(conn.execute(probe).keys())


def _codec(
    first: tuple[Any, ...], columns: Sequence[str], dtype: str | None, shape: Sequence[int] | None
) -> FeatureCodec:
    if len(columns) > 1 or isinstance(first[0], (int, float, np.number)) or type(first[0]).__name__ == "Decimal":
        bad = [c for c, v in zip(columns, first, strict=True) if not isinstance(v, (int, float, np.number)) and
               type(v).__name__ != "Decimal"]
        if bad:
            nulls = [c for c, v in zip(columns, first, strict=True) if v is None]
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
    force: bool = False,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    progress: bool = True,
) -> DatasetInfo:
    """Materialise dataset table ``name`` from the rows of ``sql``.

    Args:
        sql: exactly one SELECT over the user's tables (anything else is refused before it runs); its rows become
            dataset rows. It runs in a read-only transaction where the database has one.
        label_column: the query column holding the label (None: unlabelled). Every other column is a feature.
        order_by: query columns that fix the row order; by default all columns, in query order. Give a key when
            the query returns BLOBs (DM8 and MySQL cannot sort by them).
        force, keep_versions: as in :func:`write_arrays`.
        dtype, shape: how to decode a single binary feature column: with both, fixed-shape arrays; with ``dtype``
            only, variable-length 1-D arrays; with neither, raw bytes. Numeric feature columns need neither.

    Raises:
        InvalidInputError: the SQL is not exactly one SELECT, or its columns or rows cannot be stored (the message
            names the column or row).
        TableExistsError: the name is taken and ``if_exists``/``force`` do not allow replacing it.
        DatabaseError: and its subclasses, for what the database reports (a write attempted by the query included).
    """
    db = as_database(url)
    sql = single_select(sql)
    columns = query_columns(db, sql)
    # Names as the server folds them (DM8 with CASE_SENSITIVE=N reports LABEL for label).
    label_column = label_column and (db.backend.find_column(db.dialect, label_column, columns) or label_column)
    order_by = order_by and [db.backend.find_column(db.dialect, k, columns) or k for k in order_by]
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
    with read_only(db, "count the source query") as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(source)).scalar_one()
    if total == 0:
        raise InvalidInputError(f"no rows to write into dataset {name!r}: the query returned no rows")
    with read_only(db, "read the source query") as conn:
        first = conn.execute(ordered.limit(1)).one()
    codec = _codec(tuple(first[: len(features)]), features, dtype, shape)
    label_kind: LabelKind = "none" if label_column is None else _label_kind(first[len(features)])
    width = len(features)

    def samples() -> Iterator[tuple[Any, Any]]:
        with read_only(db, "read the source query") as conn:
            result = conn.execution_options(stream_results=True, yield_per=2000).execute(ordered)
            for i, row in enumerate(result):
                values = tuple(row[:width])
                features = values if codec.kind == "numeric" else _stored_value(values[0], codec, i)
                yield features, (row[width] if label_column else None)

    return write_rows(db, name, codec, label_kind, samples(), total=total, if_exists=if_exists, force=force,
                      keep_versions=keep_versions, progress=progress)


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
        need = (f"{expected} bytes ({codec.dtype} {codec.shape})" if expected is not None
                else f"a multiple of {itemsize}")
        raise InvalidInputError(f"query row {i}: the feature value holds {len(data)} bytes, expected {need}")
    array = np.frombuffer(data, dtype=codec.np_dtype)
    return array.reshape(codec.shape) if codec.kind == "array" else array


def _label_kind(value: Any) -> LabelKind:
    if isinstance(value, (bool, int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)) or type(value).__name__ == "Decimal":
        return "float"
    raise InvalidInputError(f"label values must be integers or floats; the query returned {type(value).__name__}")
