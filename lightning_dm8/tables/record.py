"""Record datasets: several named, typed columns per row, each stored as its own database column.

A record codec (``FeatureCodec`` of kind ``record``) lists its feature columns (``fields``) and its label columns
(``targets``), each with a column codec: ``array`` (fixed dtype and shape), ``varlen``, ``text``, ``bytes``,
``int``, ``float`` or ``bool``. Targets are numbers or fixed-length vectors (multi-label). Here: building and
checking such a codec, inferring column codecs from values, encoding one row, and narrowing a codec to the columns a
reader asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from lightning_dm8.db.backends import Backend
from lightning_dm8.db.names import check_table_name
from lightning_dm8.errors import InvalidInputError
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind, as_numpy, infer_codec, infer_varlen_codec

FIELD_KINDS = ("array", "varlen", "text", "bytes", "int", "float", "bool")
TARGET_KINDS = ("int", "float", "bool", "array")
_RESERVED = "row_id"

Named = Sequence[tuple[str, FeatureCodec]]


def record_codec(fields: Named, targets: Named = (), backend: Backend | None = None) -> FeatureCodec:
    """A record codec of these feature and label columns, checked: names usable as column names on ``backend``,
    distinct (case aside: MySQL and DM8 compare column names without case), none called ``row_id``; kinds allowed.

    Raises:
        InvalidInputError: naming the column and what is wrong with it.
    """
    if not fields:
        raise InvalidInputError("a record dataset needs at least one feature column")
    seen: dict[str, str] = {}
    for role, columns, kinds in (("feature", fields, FIELD_KINDS), ("label", targets, TARGET_KINDS)):
        for name, codec in columns:
            check_table_name(backend, name, f"{role} column", used_as="a column name")
            if name.lower() == _RESERVED:
                raise InvalidInputError(f"{role} column {name!r}: {_RESERVED!r} is the dataset's own key; rename it")
            if name.lower() in seen:
                raise InvalidInputError(
                    f"columns {seen[name.lower()]!r} and {name!r} have the same name (column names compare without "
                    f"case on MySQL and DM8); rename one"
                )
            seen[name.lower()] = name
            if codec.kind not in kinds:
                raise InvalidInputError(f"{role} column {name!r} is {codec.kind}; {role} columns hold {kinds}")
            if role == "label" and codec.kind == "array" and len(codec.shape) != 1:
                raise InvalidInputError(
                    f"label column {name!r} has shape {codec.shape}; a vector label (multi-label) is 1-D"
                )
    return FeatureCodec("record", fields=tuple(fields), targets=tuple(targets))


def record_label_kind(codec: FeatureCodec) -> LabelKind:
    """A record's label kind, as the registry records it: ``columns`` when it has label columns, else ``none``."""
    return "columns" if codec.targets else "none"


def select_columns(codec: FeatureCodec, columns: Sequence[str] | None) -> FeatureCodec:
    """``codec`` narrowed to the feature columns ``columns`` (in storage order; every label column is kept), or as it
    is for ``None``.

    Raises:
        InvalidInputError: ``columns`` names a column the dataset does not have, or the dataset is not a record.
    """
    if columns is None:
        return codec
    names = [name for name, _ in codec.fields]
    if codec.kind != "record":
        raise InvalidInputError(
            f"columns={list(columns)} selects columns of a multi-column dataset; this dataset holds one "
            f"{codec.kind} feature (leave columns unset)"
        )
    wanted = list(dict.fromkeys(columns))
    unknown = [c for c in wanted if c not in names]
    if unknown or not wanted:
        problem = f"it has no feature column {unknown}" if unknown else "columns is empty"
        raise InvalidInputError(f"cannot select columns {list(columns)}: {problem}; its feature columns are {names}")
    return replace(codec, fields=tuple((name, c) for name, c in codec.fields if name in wanted))


# -- inferring column codecs ---------------------------------------------------------------------------------------


ScalarKind = Literal["int", "float", "bool"]
_SCALAR_KINDS: dict[str, ScalarKind] = {"b": "bool", "i": "int", "u": "int", "f": "float"}


def scalar_kind(dtype: np.dtype) -> ScalarKind | None:
    """``int``, ``float`` or ``bool`` for a numeric dtype, else None."""
    return _SCALAR_KINDS.get(np.dtype(dtype).kind)


def column_codec(name: str, values: Any) -> FeatureCodec:
    """The codec of a column given as all of its values: an array ``(N,)`` of numbers (``int``, ``float``,
    ``bool``), an array ``(N, ...)`` (fixed-shape arrays), a list of ``str`` or ``bytes``, a list of arrays (one
    shape: fixed; 1-D of varying length: ``varlen``), or a list of Python numbers."""
    values = as_numpy(values)
    if isinstance(values, np.ndarray) and values.dtype != object:
        if values.ndim == 1:
            kind = scalar_kind(values.dtype)
            if kind is None:
                raise InvalidInputError(f"column {name!r} of dtype {values.dtype} cannot be stored; use numbers, "
                                        f"arrays, str or bytes")
            return FeatureCodec(kind)
        return _named(name, infer_codec, values[0])
    items = list(values)
    first = items[0]
    if isinstance(first, (str, bytes, bytearray, memoryview)):
        text = isinstance(first, str)
        wrong = next((i for i, v in enumerate(items) if isinstance(v, str) != text), None)
        if wrong is not None:
            raise InvalidInputError(f"column {name!r}: item 0 is {type(first).__name__}, item {wrong} is "
                                    f"{type(items[wrong]).__name__}; a column holds one kind of value")
        return FeatureCodec("text" if text else "bytes")
    if isinstance(first, (bool, int, float, np.number, np.bool_)):
        return column_codec(name, _numbers(name, items))
    arrays = [np.asarray(as_numpy(v)) for v in items]
    if all(a.shape == arrays[0].shape for a in arrays):
        return _named(name, infer_codec, arrays[0])
    if any(a.ndim != 1 for a in arrays):
        raise InvalidInputError(f"column {name!r}: its arrays have different shapes and are not all 1-D; a column "
                                f"holds arrays of one shape, or 1-D arrays of varying length")
    return _named(name, infer_varlen_codec, arrays)


def sample_codec(name: str, value: Any, *, varlen: bool = False) -> FeatureCodec:
    """The codec of a column given as its first value (a dataset's first sample): a number (``int``, ``float``,
    ``bool``), ``str``, ``bytes`` or an array (fixed shape; 1-D of varying length with ``varlen``)."""
    value = as_numpy(value)
    if isinstance(value, (bool, int, float, np.number, np.bool_)) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and scalar_kind(value.dtype)
    ):
        kind = scalar_kind(np.asarray(value).dtype)
        if kind is None:
            raise InvalidInputError(f"column {name!r}: {value!r} cannot be stored")
        return FeatureCodec(kind)
    if varlen:
        if np.ndim(value) != 1 or isinstance(value, (str, bytes)):
            raise InvalidInputError(f"column {name!r} is stored as variable-length arrays, which are 1-D; its first "
                                    f"value is {type(value).__name__} of shape {np.shape(value)}")
        return _named(name, infer_varlen_codec, [value])
    return _named(name, infer_codec, value)


def _numbers(name: str, items: list[Any]) -> np.ndarray:
    if any(v is None for v in items):
        raise InvalidInputError(f"column {name!r} holds None at item {items.index(None)}; every row needs a value")
    return np.asarray(items)


def _named(name: str, infer: Callable[[Any], FeatureCodec], value: Any) -> FeatureCodec:
    try:
        return infer(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"column {name!r}: {exc}") from exc


# -- encoding rows -------------------------------------------------------------------------------------------------


def encode_row(codec: FeatureCodec, features: Any, label: Any) -> tuple[Any, ...]:
    """One record's values in the table's column order: the feature columns, then the label columns.

    ``features`` is a mapping of every feature column; ``label`` is None (no label columns), one column's value, or
    a mapping of every label column.

    Raises:
        InvalidInputError: a column is missing, unknown, or its value cannot be stored (named).
    """
    values = [_encode(name, column, value) for name, column, value in _pairs(codec.fields, features, "features")]
    if not codec.targets:
        if label is not None:
            raise InvalidInputError("the dataset has no label columns, but a label was given")
        return tuple(values)
    if len(codec.targets) == 1 and not isinstance(label, Mapping):
        name, column = codec.targets[0]
        return (*values, _encode(name, column, label))
    targets = [_encode(name, column, value) for name, column, value in _pairs(codec.targets, label, "labels")]
    return (*values, *targets)


def _pairs(columns: Named, values: Any, what: str) -> list[tuple[str, FeatureCodec, Any]]:
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"{what} must be a dict of columns {[n for n, _ in columns]}; got "
                                f"{type(values).__name__}")
    names = [name for name, _ in columns]
    missing = [n for n in names if n not in values]
    extra = [n for n in values if n not in names]
    if missing or extra:
        detail = (f" (missing {missing})" if missing else "") + (f" (unknown {extra})" if extra else "")
        raise InvalidInputError(f"{what} have columns {list(values)}, expected {names}{detail}")
    return [(name, column, values[name]) for name, column in columns]


def _encode(name: str, column: FeatureCodec, value: Any) -> Any:
    if value is None:
        raise InvalidInputError(f"column {name!r} is None; every row needs a value")
    value = as_numpy(value)
    if column.kind in ("array", "varlen") and not column.stores_dtype(np.asarray(value).dtype):
        raise InvalidInputError(f"column {name!r} holds {column.np_dtype}; this value is {np.asarray(value).dtype}")
    if column.kind == "array" and np.shape(value) != column.shape:
        raise InvalidInputError(f"column {name!r} holds arrays of shape {column.shape}; this value has shape "
                                f"{np.shape(value)}")
    try:
        return column.encode(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"column {name!r}: {exc}") from exc


# -- records from columns and from samples ---------------------------------------------------------------------------


def columns_codec(features: Mapping[str, Any], targets: Mapping[str, Any], backend: Backend | None) -> FeatureCodec:
    """The record codec of feature and label columns given as all their values (see :func:`column_codec`).

    Raises:
        InvalidInputError: the columns differ in length (every length named), or a column cannot be stored.
    """
    lengths = {name: len(values) for name, values in (*features.items(), *targets.items())}
    if len(set(lengths.values())) > 1:
        raise InvalidInputError(f"columns have different lengths {lengths}; every column needs one value per row")
    return record_codec([(name, column_codec(name, values)) for name, values in features.items()],
                        [(name, column_codec(name, values)) for name, values in targets.items()], backend)


def column_rows(features: Mapping[str, Any], targets: Mapping[str, Any]) -> Iterator[tuple[Any, Any]]:
    """``(features, label)`` per row of columns of equal length: a dict of the feature columns' values, and a dict
    of the label columns' values (None without label columns)."""
    n = len(next(iter(features.values())))
    for i in range(n):
        row = {name: values[i] for name, values in features.items()}
        yield row, ({name: values[i] for name, values in targets.items()} if targets else None)


def sample_record_codec(
    features: Mapping[str, Any], label: Any, varlen: bool | Sequence[str], backend: Backend | None
) -> FeatureCodec:
    """The record codec of samples like this first one: ``features`` a dict of column values, ``label`` None (no
    label column), one value (a column ``label``) or a dict of label columns. ``varlen``: the feature columns stored
    as variable-length 1-D arrays (True: every 1-D array column).

    Raises:
        InvalidInputError: ``varlen`` names a column the sample does not have, or a value cannot be stored.
    """
    if isinstance(varlen, str):
        varlen = [varlen]
    if not isinstance(varlen, bool):
        unknown = [name for name in varlen if name not in features]
        if unknown:
            raise InvalidInputError(f"varlen names columns {unknown} that the samples do not have; their feature "
                                    f"columns are {list(features)}")

    def stored_varlen(name: str, value: Any) -> bool:
        if varlen is True:
            return not isinstance(value, (str, bytes, bytearray, memoryview)) and np.ndim(as_numpy(value)) == 1
        return varlen is not False and name in varlen

    fields = [(name, sample_codec(name, value, varlen=stored_varlen(name, value))) for name, value in features.items()]
    labels = {} if label is None else label if isinstance(label, Mapping) else {"label": label}
    return record_codec(fields, [(name, sample_codec(name, value)) for name, value in labels.items()], backend)


def describe_column(codec: FeatureCodec) -> str:
    """A record column's kind for people: ``int``, ``text``, ``uint8[3, 32, 32]`` (an array), ``int32[]``
    (variable-length)."""
    if codec.kind == "array":
        return f"{codec.np_dtype.name}{list(codec.shape)}"
    if codec.kind == "varlen":
        return f"{codec.np_dtype.name}[]"
    return codec.kind


def describe_columns(columns: Named) -> str:
    """``name:kind, ...`` of record columns (see :func:`describe_column`)."""
    return ", ".join(f"{name}:{describe_column(codec)}" for name, codec in columns)
