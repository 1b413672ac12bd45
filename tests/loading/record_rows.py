"""Record datasets for the loading and DataModule tests: columns of every kind written with ``write_rows`` (target
``y`` is the row id, so a batch says which rows it holds), and the batches the same data in memory gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lightning_dm8.db.engine import Database
from lightning_dm8.loading.batches import Padded
from lightning_dm8.tables.record import column_codec, record_codec, record_label_kind
from lightning_dm8.tables.writer import write_rows

Arrays = dict[str, Any]


def record_columns(n: int, seed: int = 0) -> tuple[Arrays, Arrays]:
    """Feature columns (image, varlen tokens, text, float, int, bool) and targets (``y`` = row id, a vector)."""
    rng = np.random.default_rng(seed)
    features = {
        "image": rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8),
        "tokens": [rng.integers(0, 1000, int(rng.integers(0, 7)), dtype=np.int32) for _ in range(n)],
        "title": [f"title {i} é {'x' * int(rng.integers(0, 5))}" for i in range(n)],
        "price": rng.standard_normal(n),
        "count": rng.integers(-50, 50, n),
        "ok": rng.random(n) < 0.5,
    }
    targets = {"y": np.arange(n), "multi": rng.random((n, 4)).astype(np.float32)}
    return features, targets


def write_record(url: str, name: str, features: Arrays, targets: Arrays | None, **options: Any) -> None:
    """A record dataset of these columns (labels: one target as it is, several as a dict, or none)."""
    db = Database(url)
    try:
        fields = [(k, column_codec(k, v)) for k, v in features.items()]
        target_codecs = [(k, column_codec(k, v)) for k, v in (targets or {}).items()]
        n = len(next(iter(features.values())))
        samples = [({k: v[i] for k, v in features.items()}, _label(targets, i)) for i in range(n)]
        record = record_codec(fields, target_codecs, db.backend)
        write_rows(db, name, record, record_label_kind(record), samples, total=n, progress=False, **options)
    finally:
        db.dispose()


def _label(targets: Arrays | None, i: int) -> Any:
    if not targets:
        return None
    if len(targets) == 1:
        return next(iter(targets.values()))[i]
    return {k: v[i] for k, v in targets.items()}


def expected_features(features: Arrays, ids: np.ndarray, pad_value: float | None = None) -> dict[str, Any]:
    """The feature dict of a batch of rows ``ids``, built from the in-memory columns."""
    out: dict[str, Any] = {}
    for name, column in features.items():
        if isinstance(column, np.ndarray):
            values = column[ids]
            out[name] = torch.from_numpy(values.astype(np.float32) if values.dtype.kind == "f" else values)
        elif isinstance(column[0], np.ndarray):
            rows = [torch.from_numpy(column[i]) for i in ids]
            if pad_value is None:
                out[name] = rows
            else:
                lengths = torch.tensor([len(r) for r in rows], dtype=torch.int64)
                padded = torch.full((len(rows), int(lengths.max()) if len(rows) else 0), pad_value,
                                    dtype=rows[0].dtype)
                for k, r in enumerate(rows):
                    padded[k, : len(r)] = r
                out[name] = Padded(padded, lengths)
        else:
            out[name] = [column[i] for i in ids]
    return out


def expected_targets(targets: Arrays, ids: np.ndarray) -> Any:
    tensors = {k: torch.from_numpy(v[ids].astype(np.float32) if v.dtype.kind == "f" else v[ids])
               for k, v in targets.items()}
    return tensors if len(tensors) > 1 else next(iter(tensors.values()))


def assert_same(got: Any, expected: Any, where: str = "batch") -> None:
    """Equal structure, types, dtypes and values (tensors, lists of tensors, Padded pairs, text, numbers)."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{where}: {type(got).__name__}, expected a tensor"
        assert got.dtype == expected.dtype and got.shape == expected.shape, \
            f"{where}: {got.dtype} {tuple(got.shape)}, expected {expected.dtype} {tuple(expected.shape)}"
        assert torch.equal(got, expected), f"{where}: values differ"
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), f"{where}: keys {list(got)}"
        for key in expected:
            assert_same(got[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(got) is type(expected) or (isinstance(got, list) and isinstance(expected, list)), \
            f"{where}: {type(got).__name__}, expected {type(expected).__name__}"
        assert len(got) == len(expected), f"{where}: {len(got)} items, expected {len(expected)}"
        for k, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same(a, b, f"{where}[{k}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


def epoch(loader: Any) -> list[Any]:
    """One epoch of batches, each with its own copy of every tensor (batches from workers are shared views)."""
    return [_cloned(batch) for batch in loader]


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    if isinstance(value, Padded):
        return Padded(*(_cloned(v) for v in value))
    if isinstance(value, tuple):
        return tuple(_cloned(v) for v in value)
    if isinstance(value, list):
        return type(value)([_cloned(v) for v in value])  # a RaggedBatch stays one
    return value


def negate(value: Any) -> Any:
    """A per-column transform for the tests (importable by its dotted path, from YAML)."""
    return -value


def title_length(sample: dict[str, Any]) -> dict[str, Any]:
    """A whole-sample transform for the tests: adds a column computed from another."""
    return {**sample, "title_length": len(sample["title"])}
