"""Database rows as a driver returns them, for each feature codec, and a comparison of decoded features: shared by
the block tests (tables) and the cache format and assembly tests (loading)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lightning_dm8.tables.codecs import FeatureCodec

ARRAY = FeatureCodec("array", "<i2", (2, 2))
VARLEN = FeatureCodec("varlen", "<i8")
TEXT = FeatureCodec("text")
BYTES = FeatureCodec("bytes")
NUMERIC = FeatureCodec("numeric", columns=("a", "b"))
CODECS = [ARRAY, VARLEN, TEXT, BYTES, NUMERIC]


def rows_for(codec: FeatureCodec, n: int, labelled: bool = True, start: int = 0) -> list[tuple[Any, ...]]:
    """Database rows ``(row_id, *features, [label])`` as a driver returns them."""
    rows = []
    for i in range(start, start + n):
        if codec.kind == "array":
            values: tuple[Any, ...] = (np.full((2, 2), i, np.int16).tobytes(),)
        elif codec.kind == "varlen":
            values = (np.arange(i, dtype=np.int64).tobytes(),)
        elif codec.kind == "text":
            values = (f"样本 {i} 😀",)
        elif codec.kind == "bytes":
            values = (bytes([i]) * i,)
        else:
            values = (float(i), -float(i))
        rows.append((i, *values, i * 10) if labelled else (i, *values))
    return rows


def features_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if len(a) != len(b):
        return False
    return all(features_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(a, b, strict=True))
