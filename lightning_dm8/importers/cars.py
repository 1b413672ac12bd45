"""The classic car data set (Auto MPG, 406 models of 1970-1982) shipped inside the ``vega_datasets`` wheel, as a
multi-column table: a name (text), six measurements (floats), cylinders and model year (ints), and the region of
origin as the label.

The file is read straight from the installed package, without importing it (its ``__init__`` needs pandas), so
nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from lightning_dm8.importers.splits import split_train_test

ORIGINS = ("USA", "Europe", "Japan")
"""Label values: the index of the car's region of origin."""
FLOAT_COLUMNS = {"mpg": "Miles_per_Gallon", "displacement": "Displacement", "horsepower": "Horsepower",
                 "weight": "Weight_in_lbs", "acceleration": "Acceleration"}

Columns = dict[str, Any]


def cars_file() -> Path:
    """The ``cars.json`` inside the installed ``vega_datasets`` package.

    Raises:
        FileNotFoundError: the package is not installed (``pip install vega_datasets``) or lacks the file.
    """
    spec = importlib.util.find_spec("vega_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the cars data set comes with the vega_datasets package: pip install vega_datasets "
                                "(or pip install 'lightning_dm8[examples]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "_data" / "cars.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed vega_datasets package; reinstall it")
    return path


def load_cars(path: Path | None = None) -> tuple[Columns, np.ndarray]:
    """The cars with every measurement present (392 of 406: the others lack mpg or horsepower), in file order.

    Returns:
        ``(features, labels)``: features ``{"name": [str], "cylinders": int64, "year": int64, "mpg": float64,
        ...}``, labels the int64 index of the origin in :data:`ORIGINS`.

    Raises:
        ValueError: the file is not the cars data set (a record without a field, an unknown origin).
    """
    records = json.loads((path or cars_file()).read_text(encoding="utf-8"))
    try:
        kept = [r for r in records if all(r[field] is not None for field in FLOAT_COLUMNS.values())]
        features: Columns = {
            "name": [str(r["Name"]) for r in kept],
            "cylinders": np.array([int(r["Cylinders"]) for r in kept], dtype=np.int64),
            "year": np.array([int(str(r["Year"])[:4]) for r in kept], dtype=np.int64),
        }
        for column, field in FLOAT_COLUMNS.items():
            features[column] = np.array([float(r[field]) for r in kept], dtype=np.float64)
        labels = np.array([ORIGINS.index(r["Origin"]) for r in kept], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path or cars_file()} is not the cars data set ({exc!r})") from exc
    return features, labels


def load_cars_split(test_fraction: float = 0.2, seed: int = 0) -> dict[str, tuple[Columns, np.ndarray]]:
    """The cars split into ``{"train", "test"}`` by the project's one deterministic split."""
    features, labels = load_cars()
    train, test = split_train_test(len(labels), test_fraction, seed)
    return {split: (take_rows(features, index), labels[index]) for split, index in (("train", train), ("test", test))}


def take_rows(features: Columns, index: np.ndarray | slice) -> Columns:
    """The rows ``index`` of every column (lists of text too)."""
    if isinstance(index, slice):
        return {name: values[index] for name, values in features.items()}
    return {name: (values[index] if isinstance(values, np.ndarray) else [values[i] for i in index.tolist()])
            for name, values in features.items()}
