"""The cars table from the vega_datasets wheel: typed columns, complete rows only, a deterministic split."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lightning_dm8 import DatasetTable
from lightning_dm8.importers.cars import ORIGINS, cars_file, load_cars, load_cars_split
from lightning_dm8.importers.pipeline import import_source

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vega_datasets") is None,
                                reason="the cars data set ships in vega_datasets (the examples extra)")


def test_cars_are_typed_columns_of_the_complete_rows() -> None:
    records = json.loads(cars_file().read_text())
    features, labels = load_cars()
    assert len(records) == 406 and len(labels) == 392  # 14 cars lack mpg or horsepower
    assert list(features) == ["name", "cylinders", "year", "mpg", "displacement", "horsepower", "weight",
                              "acceleration"]
    complete = [r for r in records if r["Miles_per_Gallon"] is not None and r["Horsepower"] is not None]
    assert features["name"][:2] == [complete[0]["Name"], complete[1]["Name"]] == ["chevrolet chevelle malibu",
                                                                                 "buick skylark 320"]
    assert features["cylinders"].dtype == np.int64 and set(features["cylinders"]) == {3, 4, 5, 6, 8}
    assert features["year"].min() == 1970 and features["year"].max() == 1982
    assert features["mpg"].dtype == np.float64 and features["mpg"][0] == complete[0]["Miles_per_Gallon"]
    assert np.bincount(labels).tolist() == [sum(r["Origin"] == o for r in complete) for o in ORIGINS]


def test_the_split_is_deterministic_and_covers_every_car() -> None:
    first, second = load_cars_split(), load_cars_split()
    assert first["train"][0]["name"] == second["train"][0]["name"]
    assert len(first["train"][1]) + len(first["test"][1]) == 392
    assert len(first["test"][1]) == round(392 * 0.2)


def test_a_file_that_is_not_the_cars_data_set_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cars.json"
    path.write_text(json.dumps([{"Name": "x", "Miles_per_Gallon": 1, "Displacement": 1, "Horsepower": 1,
                                 "Weight_in_lbs": 1, "Acceleration": 1, "Cylinders": 4, "Year": "1970-01-01",
                                 "Origin": "Mars"}]))
    with pytest.raises(ValueError, match=r"cars.json is not the cars data set \(ValueError\("):
        load_cars(path)


def test_import_writes_one_column_per_field(db_url: str) -> None:
    infos = import_source("cars", db_url, "cars", if_exists="replace", progress=False, limit=20)
    assert [i.name for i in infos] == ["cars_train", "cars_test"]
    features, label = DatasetTable(db_url, "cars_train")[0]
    expected = load_cars_split()["train"]
    assert features["name"] == expected[0]["name"][0] and features["year"] == expected[0]["year"][0]
    assert features["mpg"] == pytest.approx(expected[0]["mpg"][0]) and label == expected[1][0]
