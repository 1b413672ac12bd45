"""Feature codecs: how one sample's features become one database value and back.

A codec is plain data (stored as JSON in the dataset registry) so a reader in another process decodes
exactly what the writer encoded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from lightning_dm8.errors import InvalidInputError

FeatureKind = Literal["array", "varlen", "text", "bytes", "numeric", "int", "float", "bool", "record"]
LabelKind = Literal["int", "float", "none", "columns"]
"""``columns``: a record dataset's labels are its codec's target columns (see :attr:`FeatureCodec.targets`)."""

SCALAR_DTYPES = {"int": "<i8", "float": "<f8", "bool": "|b1"}
"""How a scalar column's values are held in a block: int64, float64 and bool (BIGINT, DOUBLE and BOOLEAN in SQL)."""


def _canonical_dtype(dtype: Any) -> np.dtype:
    """The little-endian form of ``dtype``: stored bytes are always little-endian so every platform reads them."""
    dt = np.dtype(dtype)
    if dt.kind not in "biuf" and dt != np.bool_:
        raise InvalidInputError(
            f"features of dtype {dt} cannot be stored; use a numeric dtype (int, uint, float, bool)"
        )
    return dt.newbyteorder("<") if dt.byteorder == ">" else dt


@dataclass(frozen=True)
class FeatureCodec:
    """How features are stored.

    Kinds: ``array`` (fixed dtype and shape, one binary value per row), ``varlen`` (1-D arrays of one dtype and
    varying length), ``text`` (a string), ``bytes`` (opaque binary), ``numeric`` (plain numeric columns, read
    back as one float32 vector per row); ``int``, ``float`` and ``bool`` (one number per row, in a column of its
    natural SQL type), the kinds of one column of a record.

    ``record``: several named columns per row (:mod:`lightning_dm8.tables.record`). ``fields`` are the feature
    columns and ``targets`` the label columns, each ``(name, codec)`` of one of the kinds above (not ``numeric`` or
    ``record``), in storage order.
    """

    kind: FeatureKind
    dtype: str | None = None
    shape: tuple[int, ...] = ()
    columns: tuple[str, ...] = field(default=())
    fields: tuple[tuple[str, FeatureCodec], ...] = field(default=())
    targets: tuple[tuple[str, FeatureCodec], ...] = field(default=())

    @property
    def np_dtype(self) -> np.dtype:
        if self.kind in SCALAR_DTYPES:
            return np.dtype(SCALAR_DTYPES[self.kind])
        return np.dtype(self.dtype) if self.dtype else np.dtype(np.uint8)

    def stores_dtype(self, dtype: Any) -> bool:
        """Whether samples of ``dtype`` are stored as this codec's dtype without conversion (byte order aside:
        big-endian input is stored little-endian)."""
        dt = np.dtype(dtype)
        return (dt.newbyteorder("<") if dt.byteorder == ">" else dt) == self.np_dtype

    @property
    def fixed_size(self) -> int | None:
        """Bytes per encoded sample when every sample has the same size, else None."""
        if self.kind in SCALAR_DTYPES:
            return self.np_dtype.itemsize
        if self.kind != "array":
            return None
        return int(math.prod(self.shape)) * self.np_dtype.itemsize

    def to_json(self) -> str:
        return json.dumps(self._as_data())

    def _as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "dtype": self.dtype, "shape": list(self.shape),
                                "columns": list(self.columns)}
        if self.kind == "record":
            data["fields"] = [{"name": name, **codec._as_data()} for name, codec in self.fields]
            data["targets"] = [{"name": name, **codec._as_data()} for name, codec in self.targets]
        return data

    @classmethod
    def from_json(cls, text: str) -> FeatureCodec:
        return cls._from_data(json.loads(text))

    @classmethod
    def _from_data(cls, data: dict[str, Any]) -> FeatureCodec:
        def named(items: list[dict[str, Any]] | None) -> tuple[tuple[str, FeatureCodec], ...]:
            return tuple((str(item["name"]), cls._from_data(item)) for item in items or ())

        return cls(data["kind"], data.get("dtype"), tuple(data.get("shape") or ()), tuple(data.get("columns") or ()),
                   named(data.get("fields")), named(data.get("targets")))

    def encode(self, sample: Any) -> Any:
        """One sample's features as the value stored in the features column."""
        if self.kind in SCALAR_DTYPES:
            return encode_scalar(self.kind, sample)
        if self.kind == "array":
            arr = np.ascontiguousarray(sample, dtype=self.np_dtype)
            if arr.shape != self.shape:
                raise InvalidInputError(f"sample of shape {arr.shape} does not match the dataset's shape {self.shape}")
            return arr.tobytes()
        if self.kind == "varlen":
            arr = np.asarray(sample)
            if arr.ndim != 1 or not self.stores_dtype(arr.dtype):
                raise InvalidInputError(
                    f"variable-length features must be 1-D arrays of {self.np_dtype}; got shape {arr.shape} of "
                    f"{arr.dtype}"
                )
            return np.ascontiguousarray(arr, dtype=self.np_dtype).tobytes()
        if self.kind == "text":
            if not isinstance(sample, str):
                raise InvalidInputError(f"text features must be str; got {type(sample).__name__}")
            return sample
        if self.kind == "bytes":
            if not isinstance(sample, (bytes, bytearray, memoryview)):
                raise InvalidInputError(f"bytes features must be bytes; got {type(sample).__name__}")
            return bytes(sample)
        try:
            values = tuple(float(v) for v in np.asarray(sample).reshape(-1))
        except (TypeError, ValueError) as exc:  # None from a NULL in the source query, or text
            raise InvalidInputError(
                f"numeric features must be numbers; got {sample!r} (filter out or COALESCE NULLs in the query)"
            ) from exc
        if len(values) != len(self.columns):
            raise InvalidInputError(f"expected {len(self.columns)} numeric features, got {len(values)}")
        return values

    def decode_one(self, value: Any) -> Any:
        """One stored value back as the sample's features."""
        if self.kind == "array":
            return np.frombuffer(value, dtype=self.np_dtype).reshape(self.shape).copy()
        if self.kind == "varlen":
            return np.frombuffer(value, dtype=self.np_dtype).copy()
        if self.kind == "bytes":
            return bytes(value)
        if self.kind == "numeric":
            return np.asarray(value, dtype=np.float32)
        if self.kind in SCALAR_DTYPES:
            return np.asarray(value, dtype=self.np_dtype).item()
        return value


def encode_scalar(kind: str, value: Any) -> int | float | bool:
    """A number as stored in an ``int``, ``float`` or ``bool`` column: exact (no silent truncation), finite (MySQL
    and DM8 cannot store NaN), and never None (a NULL has no value to train on)."""
    value = as_numpy(value)
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise InvalidInputError(f"{kind} values must be single numbers; got an array of shape {value.shape}")
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if kind == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise InvalidInputError(f"bool values must be True/False (or 0/1); got {value!r}")
    if not isinstance(value, (int, float)) and type(value).__name__ != "Decimal":
        raise InvalidInputError(
            f"{kind} values must be numbers; got {value!r} (filter out or COALESCE NULLs in a query)"
        )
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{kind} value {value!r} is not a finite number; drop or fix that row")
    if kind == "float":
        return number
    if isinstance(value, bool) or not number.is_integer():
        raise InvalidInputError(f"int values must be whole numbers; got {value!r} (store it in a float column)")
    return int(value)


def infer_codec(sample: Any) -> FeatureCodec:
    """The codec for features that look like ``sample`` (the first one written)."""
    if isinstance(sample, str):
        return FeatureCodec("text")
    if isinstance(sample, (bytes, bytearray, memoryview)):
        return FeatureCodec("bytes")
    arr = np.asarray(as_numpy(sample))
    return FeatureCodec("array", _canonical_dtype(arr.dtype).str, tuple(int(d) for d in arr.shape))


def infer_varlen_codec(samples: Sequence[Any]) -> FeatureCodec:
    """The codec for a list of 1-D arrays of varying length; all must share one dtype."""
    first = np.asarray(as_numpy(samples[0]))
    return FeatureCodec("varlen", _canonical_dtype(first.dtype).str)


def as_numpy(value: Any) -> Any:
    """Tensors become numpy arrays without importing torch here."""
    to_numpy = getattr(value, "numpy", None)
    if callable(to_numpy) and hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def label_kind_of(labels: np.ndarray | None) -> LabelKind:
    """``int`` for integer or bool labels, ``float`` for floating ones, ``none`` without labels."""
    if labels is None:
        return "none"
    if labels.dtype.kind in "biu":
        return "int"
    if labels.dtype.kind == "f":
        return "float"
    raise InvalidInputError(f"labels of dtype {labels.dtype} cannot be stored; use integer or float labels")
