"""write_query: materialise a dataset table from a SELECT over the user's own tables.

The query runs on the server, ordered deterministically, and its rows stream through the same writer path
as arrays do, numbered densely 0..N-1 in that order.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from typing import Any, Literal, cast

import numpy as np
import sqlalchemy as sa

from lightning_dm8.db.coerce import as_database
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import InvalidInputError
from lightning_dm8.tables.codecs import FeatureCodec, FeatureKind, LabelKind, infer_codec, infer_varlen_codec
from lightning_dm8.tables.gc import DEFAULT_KEEP_VERSIONS
from lightning_dm8.tables.record import FIELD_KINDS, record_codec, record_label_kind
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
    """The vector layout's codec: numbers as one vector, else the single text or binary column (see
    :func:`_vector_obstacle`, which has checked that one of the two holds)."""
    if len(columns) > 1 or _is_number(first[0]):
        clash = [c for c in columns if c.lower() in (ROW_ID, LABEL, FEATURES)]
        if clash:
            raise InvalidInputError(f"feature columns may not be named {clash}; rename them in the query (AS ...)")
        return FeatureCodec("numeric", columns=tuple(columns))
    if isinstance(first[0], str):
        return FeatureCodec("text")
    if dtype is None:
        return FeatureCodec("bytes")
    if shape is None:
        return infer_varlen_codec([np.zeros(0, dtype=dtype)])
    return FeatureCodec("array", np.dtype(dtype).str, tuple(int(s) for s in shape))


Layout = Literal["auto", "vector", "columns"]
_LAYOUTS = ("auto", "vector", "columns")


def write_query(
    url: str | Database,
    name: str,
    sql: str,
    *,
    label_column: str | Sequence[str] | None = "label",
    order_by: Sequence[str] | None = None,
    dtype: str | None = None,
    shape: Sequence[int] | None = None,
    codecs: Mapping[str, Mapping[str, Any]] | None = None,
    layout: Layout = "auto",
    if_exists: IfExists = "fail",
    force: bool = False,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    progress: bool = True,
) -> DatasetInfo:
    """Materialise dataset table ``name`` from the rows of ``sql``.

    Args:
        sql: exactly one SELECT over the user's tables (anything else is refused before it runs); its rows become
            dataset rows. It runs in a read-only transaction where the database has one.
        label_column: the query column holding the label (None: unlabelled), or a list of label columns. Every
            other column is a feature.
        order_by: query columns that fix the row order; by default all columns, in query order. Give a key when
            the query returns BLOBs (DM8 and MySQL cannot sort by them).
        force, keep_versions: as in :func:`write_arrays`.
        dtype, shape: how to decode a single binary feature column: with both, fixed-shape arrays; with ``dtype``
            only, variable-length 1-D arrays; with neither, raw bytes. Numeric feature columns need neither.
        codecs: ``{column: {"dtype": ..., "shape": [...]}}`` decodes binary columns of a record as fixed-shape
            arrays (``dtype`` alone: variable-length 1-D arrays); ``{"kind": "bool"}`` (or ``int``, ``float``,
            ``text``, ``bytes``) sets a column's kind outright.
        layout: ``"columns"`` stores each query column as a column of its own, with its natural type (a record
            dataset; kinds from the first row's values: integers, floats and decimals, booleans, text, bytes);
            ``"vector"`` stores numeric feature columns as one vector per row (or a single binary or text column as
            the features); ``"auto"`` (the default) picks ``"vector"`` when it can hold the query, else ``"columns"``.

    Raises:
        InvalidInputError: the SQL is not exactly one SELECT, or its columns or rows cannot be stored (the message
            names the column or row; NULLs included).
        TableExistsError: the name is taken and ``if_exists``/``force`` do not allow replacing it.
        DatabaseError: and its subclasses, for what the database reports (a write attempted by the query included).
    """
    if layout not in _LAYOUTS:
        raise InvalidInputError(f"layout must be one of {_LAYOUTS}; got {layout!r}")
    db = as_database(url)
    sql = single_select(sql)
    columns = query_columns(db, sql)
    labels = _label_names(db, label_column, columns)
    specs = _column_specs(db, codecs, columns)
    # Names as the server folds them (DM8 with CASE_SENSITIVE=N reports LABEL for label).
    order_by = order_by and [db.backend.find_column(db.dialect, k, columns) or k for k in order_by]
    features = [c for c in columns if c not in labels]
    if not features:
        raise InvalidInputError(f"the query returns no feature column besides the label; its columns are {columns}")
    keys = list(order_by) if order_by else columns
    unknown = [k for k in keys if k not in columns]
    if unknown:
        raise InvalidInputError(f"order_by names {unknown}, which the query does not return; its columns are {columns}")
    source = _source(sql)
    ordered = sa.select(*[sa.column(c) for c in features + labels]).select_from(source).order_by(
        *[sa.column(k) for k in keys]
    )
    with read_only(db, "count the source query") as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(source)).scalar_one()
    if total == 0:
        raise InvalidInputError(f"no rows to write into dataset {name!r}: the query returned no rows")
    with read_only(db, "read the source query") as conn:
        first = tuple(conn.execute(ordered.limit(1)).one())
    names = features + labels
    _check_nulls(first, names, 0)
    width = len(features)
    options: dict[str, Any] = {"total": total, "if_exists": if_exists, "force": force, "keep_versions": keep_versions,
                               "progress": progress}
    if _as_record(layout, first[:width], features, label_column, specs, dtype, shape):
        record = _query_record(first, features, labels, specs, db)
        return write_rows(db, name, record, record_label_kind(record), _record_rows(db, ordered, record, names),
                          **options)
    codec = _codec(first[:width], features, dtype, shape)
    label_kind: LabelKind = "none" if not labels else _label_kind(first[width])

    def samples() -> Iterator[tuple[Any, Any]]:
        with closing(_rows(db, ordered, names)) as rows:
            for i, row in rows:
                values = tuple(row[:width])
                stored = values if codec.kind == "numeric" else _stored_value(values[0], codec, i)
                yield stored, (row[width] if labels else None)

    return write_rows(db, name, codec, label_kind, samples(), **options)


def _label_names(db: Database, label_column: str | Sequence[str] | None, columns: list[str]) -> list[str]:
    """The label columns as the server names them (DM8 may fold their case)."""
    wanted = [] if label_column is None else [label_column] if isinstance(label_column, str) else list(label_column)
    found = [db.backend.find_column(db.dialect, label, columns) or label for label in wanted]
    missing = [label for label in found if label not in columns]
    if missing:
        what = f"label column {missing[0]!r}" if len(missing) == 1 else f"label columns {missing}"
        raise InvalidInputError(f"the query has no {what}; its columns are {columns}")
    return found


def _column_specs(
    db: Database, codecs: Mapping[str, Mapping[str, Any]] | None, columns: list[str]
) -> dict[str, FeatureCodec]:
    """``codecs`` as column codecs, keyed by the columns as the server names them."""
    specs: dict[str, FeatureCodec] = {}
    for column, spec in (codecs or {}).items():
        found = db.backend.find_column(db.dialect, column, columns)
        if found is None:
            raise InvalidInputError(f"codecs names column {column!r}, which the query does not return; its columns "
                                    f"are {columns}")
        specs[found] = _spec_codec(column, spec)
    return specs


def _spec_codec(column: str, spec: Mapping[str, Any]) -> FeatureCodec:
    """One entry of ``codecs``: ``{"dtype", "shape"}`` (arrays), ``{"dtype"}`` (variable-length) or ``{"kind"}``."""
    unknown = sorted(set(spec) - {"kind", "dtype", "shape"})
    kind = spec.get("kind") or ("array" if "shape" in spec else "varlen" if "dtype" in spec else None)
    if unknown or kind not in FIELD_KINDS or (kind in ("array", "varlen")) != ("dtype" in spec) or \
            (kind == "array") != ("shape" in spec):
        raise InvalidInputError(
            f"codecs[{column!r}] is {dict(spec)}; give {{'dtype': ..., 'shape': [...]}} (fixed-shape arrays), "
            f"{{'dtype': ...}} (variable-length 1-D arrays) or {{'kind': k}} with k one of {FIELD_KINDS[2:]}"
        )
    if kind not in ("array", "varlen"):
        return FeatureCodec(cast(FeatureKind, kind))
    try:
        empty = np.zeros(tuple(int(s) for s in spec["shape"]) if kind == "array" else 0, dtype=spec["dtype"])
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"codecs[{column!r}]: {exc}") from exc
    return infer_codec(empty) if kind == "array" else infer_varlen_codec([empty])


def _as_record(
    layout: Layout, first: tuple[Any, ...], features: list[str], label_column: str | Sequence[str] | None,
    specs: dict[str, FeatureCodec], dtype: str | None, shape: Sequence[int] | None,
) -> bool:
    """Whether the query becomes a record dataset: with ``layout="auto"``, when the vector layout cannot hold it."""
    obstacle = _vector_obstacle(first, features, label_column, specs)
    if layout == "vector" and obstacle:
        raise InvalidInputError(f"layout='vector' cannot hold this query: {obstacle}; use layout='columns' (each "
                                f"column stored as its own) or layout='auto'")
    record = layout == "columns" or (layout == "auto" and obstacle is not None)
    if record and (dtype is not None or shape is not None):
        raise InvalidInputError(
            "dtype and shape describe the single binary feature column of layout='vector'; with several columns "
            "give codecs={'column': {'dtype': ..., 'shape': [...]}}"
        )
    return record


def _vector_obstacle(
    first: tuple[Any, ...], features: list[str], label_column: str | Sequence[str] | None,
    specs: dict[str, FeatureCodec],
) -> str | None:
    """Why the vector layout (numbers as one vector, or one binary/text column) cannot hold the query, or None."""
    if specs:
        return f"codecs are given (for {list(specs)})"
    if label_column is not None and not isinstance(label_column, str):
        return f"label_column is a list ({list(label_column)})"
    if len(features) == 1 and isinstance(first[0], (str, bytes, bytearray, memoryview)):
        return None
    other = [c for c, v in zip(features, first, strict=True) if not _is_number(v)]
    if other:
        return f"feature columns {other} are not numbers"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) or type(value).__name__ == "Decimal"


def _query_record(
    first: tuple[Any, ...], features: list[str], labels: list[str], specs: dict[str, FeatureCodec], db: Database
) -> FeatureCodec:
    """The record codec of a query whose first row is ``first`` (feature columns, then label columns)."""
    codecs = [specs.get(column) or _value_codec(column, value) for column, value in zip(features + labels, first,
                                                                                      strict=True)]
    named = list(zip(features + labels, codecs, strict=True))
    return record_codec(named[: len(features)], named[len(features):], db.backend)


def _value_codec(column: str, value: Any) -> FeatureCodec:
    """A query column's kind from its first value."""
    if isinstance(value, (bool, np.bool_)):
        return FeatureCodec("bool")
    if isinstance(value, (int, np.integer)):
        return FeatureCodec("int")
    if _is_number(value):
        return FeatureCodec("float")
    if isinstance(value, str):
        return FeatureCodec("text")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return FeatureCodec("bytes")
    raise InvalidInputError(f"column {column!r} holds {type(value).__name__} values, which a dataset cannot store; "
                            f"convert it in the query (CAST it to a number or text)")


def _record_rows(
    db: Database, ordered: sa.Select, codec: FeatureCodec, columns: list[str]
) -> Iterator[tuple[Any, Any]]:
    """The query's rows as record samples ``({feature: value}, {label: value})``, binary arrays decoded."""
    width = len(codec.fields)
    kinds = [column for _, column in (*codec.fields, *codec.targets)]
    with closing(_rows(db, ordered, columns)) as rows:
        for i, row in rows:
            values = [_stored_value(v, kind, i, f"column {c!r}") for c, kind, v in zip(columns, kinds, row,
                                                                                      strict=True)]
            yield dict(zip(columns[:width], values[:width], strict=True)), (
                dict(zip(columns[width:], values[width:], strict=True)) if codec.targets else None
            )


def _rows(db: Database, ordered: sa.Select, columns: list[str]) -> Generator[tuple[int, Any], None, None]:
    """``(i, row)`` of the query, streamed in a read-only transaction; a NULL stops it, naming column and row."""
    with read_only(db, "read the source query") as conn, \
            conn.execution_options(stream_results=True, yield_per=2000).execute(ordered) as result:
        for i, row in enumerate(result):
            if None in row:
                _check_nulls(tuple(row), columns, i)
            yield i, row


def _check_nulls(row: tuple[Any, ...], columns: list[str], i: int) -> None:
    nulls = [c for c, v in zip(columns, row, strict=True) if v is None]
    if nulls:
        raise InvalidInputError(
            f"query row {i}: column {nulls[0]!r} is NULL; every row needs a value: filter those rows out (WHERE "
            f"{nulls[0]} IS NOT NULL) or give a default (COALESCE({nulls[0]}, ...)) in the query"
        )


def _stored_value(value: Any, codec: FeatureCodec, i: int, what: str = "the feature value") -> Any:
    """A binary query value as the array the codec encodes: the query returns raw bytes, not arrays."""
    if codec.kind not in ("array", "varlen"):
        return value
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"query row {i}: {what} is {type(value).__name__}, not binary; dtype/shape apply to "
                                f"BLOB/bytes columns")
    data = bytes(value)
    itemsize = codec.np_dtype.itemsize
    expected = codec.fixed_size
    if (expected is not None and len(data) != expected) or len(data) % itemsize:
        need = (f"{expected} bytes ({codec.dtype} {codec.shape})" if expected is not None
                else f"a multiple of {itemsize}")
        raise InvalidInputError(f"query row {i}: {what} holds {len(data)} bytes, expected {need}")
    array = np.frombuffer(data, dtype=codec.np_dtype)
    return array.reshape(codec.shape) if codec.kind == "array" else array


def _label_kind(value: Any) -> LabelKind:
    if isinstance(value, (bool, int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)) or type(value).__name__ == "Decimal":
        return "float"
    raise InvalidInputError(f"label values must be integers or floats; the query returned {type(value).__name__}")
