"""Record datasets written by write_arrays (dicts of columns, DataFrames, pyarrow Tables) and write_dataset (dict
samples): every column kind round trips on every backend, each column is a plain SQL column, and bad input fails
with a message naming the column (and the sample) while leaving nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from lightning_dm8 import Database, DatasetTable, InvalidInputError, write_arrays, write_dataset
from lightning_dm8.tables.columns import Columns
from tables.support import assert_append_refused, assert_nothing_written, read_all

N = 12
TEXTS = ["", "plain", "中文文本", "emoji 😀🚀", "quote ' \" ; -- \\", "é" * 3000, "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\u200b", "a", "b", "c",
         "d"]


def feature_columns(n: int = N) -> dict[str, Any]:
    """One column of every kind: fixed arrays, variable-length arrays, text, bytes, int, float, bool."""
    rng = np.random.default_rng(5)
    return {
        "image": rng.integers(0, 256, (n, 3, 2, 2), dtype=np.uint8),
        "tokens": [rng.integers(-(2**31), 2**31 - 1, i % 5, dtype=np.int32) for i in range(n)],
        "title": TEXTS[:n],
        "raw": [rng.bytes(i * 3) for i in range(n)],
        "count": np.array([2**62, -(2**62), *range(n - 2)], dtype=np.int64),
        "price": np.array([0.1, -2.5e-300, 1.7976931348623157e308, -0.0, *np.linspace(0, 1, n - 4)]),
        "ok": np.arange(n) % 3 == 0,
    }


def target_columns(n: int = N) -> dict[str, Any]:
    """One label column of every kind: int, float and a vector (multi-label)."""
    return {"y": np.arange(n) % 4, "score": np.linspace(-1, 1, n), "tags": np.eye(n, 5, dtype=np.float32)}


def assert_value(got: Any, expected: Any) -> None:
    """Bit-exact: arrays with dtype and shape, numbers as Python numbers of the column's kind, str and bytes as such."""
    if isinstance(expected, (str, bytes)):
        assert type(got) is type(expected) and got == expected
    elif isinstance(expected, np.ndarray) and expected.ndim:
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()
    else:
        expected = expected.item() if isinstance(expected, np.generic) else expected
        assert type(got) is type(expected) and got == expected


def assert_record_round_trip(table: DatasetTable, features: dict[str, Any], targets: dict[str, Any] | None,
                             spots: list[int]) -> None:
    """Every row through one range query, then ``table[i]`` as ``({column: value}, label)``."""
    got_features, got_labels = read_all(table)
    assert isinstance(got_features, Columns) and list(got_features) == list(features)
    for name, values in features.items():
        for i in range(len(table)):
            column = got_features[name]
            assert_value(column[i].item() if isinstance(column, np.ndarray) and column.ndim == 1 else column[i],
                         values[i])
    if not targets:
        assert got_labels is None
    elif len(targets) == 1:
        (values,) = targets.values()
        np.testing.assert_array_equal(got_labels, values)
    else:
        assert list(got_labels) == list(targets)
        for name, values in targets.items():
            np.testing.assert_array_equal(got_labels[name], values)
    for i in spots:
        sample, label = table[i]
        assert list(sample) == list(features)
        for name, values in features.items():
            assert_value(sample[name], values[i])
        if not targets:
            assert label is None
        elif len(targets) == 1:
            assert_value(label, next(iter(targets.values()))[i])
        else:
            assert list(label) == list(targets)
            for name, values in targets.items():
                assert_value(label[name], values[i])


def select_by_name(db: Database, name: str, columns: list[str], row_id: int) -> tuple[Any, ...]:
    """``SELECT <columns> FROM <name> WHERE row_id = <row_id>`` in plain SQL, names quoted by the dialect."""
    with db.connect("plain SQL") as conn:
        quote = conn.dialect.identifier_preparer.quote
        sql = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(name)} WHERE {quote('row_id')} = {row_id}"
        return tuple(conn.exec_driver_sql(sql).one())


def test_every_column_kind_round_trips_from_arrays(db: Database, table_name: str) -> None:
    features, targets = feature_columns(), target_columns()
    info = write_arrays(db, table_name, features, targets, progress=False)
    assert (info.codec.kind, info.label_kind, info.row_count) == ("record", "columns", N)
    kinds = {name: codec.kind for name, codec in info.codec.fields}
    assert kinds == {"image": "array", "tokens": "varlen", "title": "text", "raw": "bytes", "count": "int",
                     "price": "float", "ok": "bool"}
    assert [(n, c.kind, c.shape) for n, c in info.codec.targets] == [("y", "int", ()), ("score", "float", ()),
                                                                     ("tags", "array", (5,))]
    table = DatasetTable(db, table_name)
    assert_record_round_trip(table, features, targets, [0, 3, 5, N - 1, -1])
    price, title, count, y = select_by_name(db, table_name, ["price", "title", "count", "y"], 7)
    assert (float(price), title, int(count), int(y)) == (features["price"][7], TEXTS[7], 5, 3)
    assert table.validate().row_count == N


def test_one_label_array_is_a_column_named_label(db: Database, table_name: str) -> None:
    features = {"x": np.arange(6, dtype=np.float32).reshape(3, 2), "name": ["a", "b", "c"]}
    info = write_arrays(db, table_name, features, np.array([0.5, 1.5, 2.5]), progress=False)
    assert [(n, c.kind) for n, c in info.codec.targets] == [("label", "float")]
    assert_record_round_trip(DatasetTable(db, table_name), features, {"label": np.array([0.5, 1.5, 2.5])}, [0, 2])
    assert select_by_name(db, table_name, ["label"], 1) == (1.5,)


def test_labels_named_among_the_columns(db: Database, table_name: str) -> None:
    columns = {"x": torch.arange(4, dtype=torch.int16), "y": [1, 0, 1, 1], "z": [0.5, 1.0, 2.0, 4.0]}
    info = write_arrays(db, table_name, dict(columns), ["y", "z"], progress=False)
    assert [n for n, _ in info.codec.fields] == ["x"] and [n for n, _ in info.codec.targets] == ["y", "z"]
    assert DatasetTable(db, table_name)[2] == ({"x": 2}, {"y": 1, "z": 2.0})
    info = write_arrays(db, table_name, dict(columns), "y", if_exists="replace", progress=False)
    assert DatasetTable(db, table_name)[3] == ({"x": 3, "z": 4.0}, 1)


def test_unlabelled_record(db: Database, table_name: str) -> None:
    features = {"title": ["x", "y"], "ok": [True, False]}
    info = write_arrays(db, table_name, features, progress=False)
    assert info.label_kind == "none" and info.codec.targets == ()
    assert_record_round_trip(DatasetTable(db, table_name), features, None, [0, 1])


def test_append_with_the_same_columns(db: Database, table_name: str) -> None:
    features, targets = feature_columns(), target_columns()
    head = {name: values[:7] for name, values in features.items()}
    tail = {name: values[7:] for name, values in features.items()}
    write_arrays(db, table_name, head, {k: v[:7] for k, v in targets.items()}, progress=False)
    info = write_arrays(db, table_name, tail, {k: v[7:] for k, v in targets.items()}, if_exists="append",
                        progress=False)
    assert info.row_count == N
    assert_record_round_trip(DatasetTable(db, table_name), features, targets, [6, 7, N - 1])


@pytest.mark.parametrize(
    ("features", "labels", "new_rows"),
    [
        ({"price": [1, 2], "title": ["a", "b"]}, {"y": [0, 1]},
         r"columns \[price:int, title:text\] with label columns \[y:int\]"),
        ({"price": [1.0, 2.0], "title": ["a", "b"]}, None, r"columns \[price:float, title:text\] with label columns "
                                                          r"\[\]"),
        (np.zeros((2, 3)), [1, 2], r"array \(<f8, shape \(3,\)\) with int labels"),
    ],
    ids=["column-kind", "labels", "single-feature"],
)
def test_append_mismatch_names_the_columns(db: Database, table_name: str, features: Any, labels: Any,
                                           new_rows: str) -> None:
    assert_append_refused(db, table_name, ({"price": [1.0, 2.0], "title": ["a", "b"]}, {"y": [0, 1]}),
                          (features, labels), r"columns \[price:float, title:text\] with label columns \[y:int\]",
                          new_rows)


def test_append_of_a_record_to_a_single_feature_dataset(db: Database, table_name: str) -> None:
    assert_append_refused(db, table_name, (np.zeros((2, 3)), [1, 2]), ({"x": np.zeros((2, 3))}, [1, 2]),
                          r"array features \(<f8, shape \(3,\)\) with int labels",
                          r"columns \[x:float64\[3\]\] with label columns \[label:int\]")


# -- DataFrames and pyarrow Tables -----------------------------------------------------------------------------------


def test_dataframe_round_trip(db: Database, table_name: str) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is optional (pip install 'lightning-dm8[frames]')")
    features = feature_columns()
    frame = pd.DataFrame({"title": features["title"], "count": features["count"], "price": features["price"],
                          "ok": features["ok"], "raw": features["raw"], "tokens": features["tokens"],
                          "image": list(features["image"]), "y": target_columns()["y"]},
                         index=np.arange(N)[::-1])  # rows by position, whatever the index
    info = write_arrays(db, table_name, frame, "y", progress=False)
    kinds = [(name, codec.kind) for name, codec in info.codec.fields]
    assert kinds == [("title", "text"), ("count", "int"), ("price", "float"), ("ok", "bool"), ("raw", "bytes"),
                     ("tokens", "varlen"), ("image", "array")]
    expected = {name: features[name] for name, _ in kinds}
    assert_record_round_trip(DatasetTable(db, table_name), expected, {"y": target_columns()["y"]}, [0, 5, N - 1])
    assert select_by_name(db, table_name, ["title"], 2) == (TEXTS[2],)


def test_dataframe_labels_frame_and_series(db: Database, table_name: str) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is optional (pip install 'lightning-dm8[frames]')")
    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5]}, index=[10, 11, 12])
    write_arrays(db, table_name, frame, pd.Series([3, 4, 5], index=[7, 8, 9]), progress=False)
    assert DatasetTable(db, table_name)[0] == ({"a": 1.5}, 3)
    write_arrays(db, table_name, frame, pd.DataFrame({"u": [1, 2, 3], "v": [True, False, True]}),
                 if_exists="replace", progress=False)
    assert DatasetTable(db, table_name)[1] == ({"a": 2.5}, {"u": 2, "v": False})


def test_pyarrow_table_round_trip(db: Database, table_name: str) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is optional (pip install 'lightning-dm8[frames]')")
    features = feature_columns()
    table = pa.table({"title": features["title"], "count": features["count"], "price": features["price"],
                      "ok": features["ok"], "raw": pa.array(features["raw"], pa.binary()),
                      "tokens": pa.array(features["tokens"], pa.list_(pa.int32())), "y": target_columns()["y"]})
    info = write_arrays(db, table_name, table, ["y"], progress=False)
    assert [c.kind for _, c in info.codec.fields] == ["text", "int", "float", "bool", "bytes", "varlen"]
    expected = {name: features[name] for name in ("title", "count", "price", "ok", "raw", "tokens")}
    assert_record_round_trip(DatasetTable(db, table_name), expected, {"y": target_columns()["y"]}, [0, 4, N - 1])
    write_arrays(db, table_name, table.to_batches()[0], "y", if_exists="replace", progress=False)
    assert DatasetTable(db, table_name)[3][0]["title"] == TEXTS[3]


# -- write_dataset ---------------------------------------------------------------------------------------------------


class RecordDataset(torch.utils.data.Dataset):
    """``(dict of columns, label)`` items from columns; ``label`` picks the label form, ``bad`` replaces items."""

    def __init__(self, label: str = "dict", bad: dict[int, Any] | None = None) -> None:
        self.features, self.targets = feature_columns(), target_columns()
        self.label = label
        self.bad = bad or {}

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> Any:
        if i in self.bad:
            return self.bad[i]
        features = {name: values[i] for name, values in self.features.items()}
        features["count"] = torch.tensor(int(features["count"]))  # tensors are values too
        if self.label == "none":
            return features
        if self.label == "dict":
            return features, {name: values[i] for name, values in self.targets.items()}
        return features, self.targets[self.label][i]


def test_write_dataset_of_dict_samples(db: Database, table_name: str) -> None:
    dataset = RecordDataset()
    info = write_dataset(db, table_name, dataset, varlen=["tokens"], progress=False)
    assert [(n, c.kind) for n, c in info.codec.fields] == [
        ("image", "array"), ("tokens", "varlen"), ("title", "text"), ("raw", "bytes"), ("count", "int"),
        ("price", "float"), ("ok", "bool")]
    assert_record_round_trip(DatasetTable(db, table_name), dataset.features, dataset.targets, [0, 6, N - 1])
    assert select_by_name(db, table_name, ["title", "y"], 3) == (TEXTS[3], 3)


@pytest.mark.parametrize(("label", "kind"), [("y", "int"), ("score", "float"), ("tags", "array")])
def test_write_dataset_with_one_label(db: Database, table_name: str, label: str, kind: str) -> None:
    dataset = RecordDataset(label)
    info = write_dataset(db, table_name, dataset, varlen=True, progress=False)
    assert [(n, c.kind) for n, c in info.codec.targets] == [("label", kind)]
    assert dict(info.codec.fields)["tokens"].kind == "varlen"
    assert_record_round_trip(DatasetTable(db, table_name), dataset.features, {"label": dataset.targets[label]},
                             [0, N - 1])


def test_write_dataset_of_bare_dicts_is_unlabelled(db: Database, table_name: str) -> None:
    dataset = RecordDataset("none")
    info = write_dataset(db, table_name, dataset, varlen="tokens", progress=False)
    assert info.label_kind == "none"
    assert_record_round_trip(DatasetTable(db, table_name), dataset.features, None, [2])


def test_write_dataset_appends_records(db: Database, table_name: str) -> None:
    dataset = RecordDataset()
    head = [dataset[i] for i in range(5)]
    write_dataset(db, table_name, head, varlen=["tokens"], progress=False)
    write_dataset(db, table_name, [dataset[i] for i in range(5, N)], varlen=["tokens"], if_exists="append",
                  progress=False)
    assert_record_round_trip(DatasetTable(db, table_name), dataset.features, dataset.targets, [4, 5])
    with pytest.raises(InvalidInputError, match=r"cannot append .*the new rows are columns \[image:uint8\[3, 2, 2\], "
                                                r"tokens:int32\[2\], "):
        write_dataset(db, table_name, [dataset[2]], if_exists="append", progress=False)


# -- bad input -------------------------------------------------------------------------------------------------------


def _item(i: int, **changes: Any) -> tuple[dict[str, Any], Any]:
    features, label = RecordDataset()[i]
    features.update(changes)
    return {k: v for k, v in features.items() if v is not None}, label


BAD: dict[str, tuple[Callable[[Database, str], Any], str]] = {
    "lengths": (lambda db, n: write_arrays(db, n, {"a": [1, 2, 3], "b": ["x", "y"]}, [0, 1, 2], progress=False),
                r"columns have different lengths \{'a': 3, 'b': 2, 'label': 3\}; every column needs one value per "
                r"row"),
    "label-lengths": (lambda db, n: write_arrays(db, n, {"a": [1, 2]}, {"y": [1]}, progress=False),
                      r"columns have different lengths \{'a': 2, 'y': 1\}"),
    "unknown-label-name": (lambda db, n: write_arrays(db, n, {"a": [1, 2]}, ["b", "a"], progress=False),
                           r"labels names columns \['b'\] that features does not have; its columns are \['a'\]"),
    "no-feature-left": (lambda db, n: write_arrays(db, n, {"a": [1, 2]}, "a", progress=False),
                        r"a record dataset needs at least one feature column"),
    "row-id": (lambda db, n: write_arrays(db, n, {"row_id": [1, 2]}, progress=False),
               r"feature column 'row_id': 'row_id' is the dataset's own key; rename it"),
    "same-name": (lambda db, n: write_arrays(db, n, {"Price": [1, 2]}, {"price": [1, 2]}, progress=False),
                  r"columns 'Price' and 'price' have the same name"),
    "label-text": (lambda db, n: write_arrays(db, n, {"a": [1, 2]}, {"y": ["x", "y"]}, progress=False),
                   r"label column 'y' is text; label columns hold \('int', 'float', 'bool', 'array'\)"),
    "not-str-name": (lambda db, n: write_arrays(db, n, {0: [1, 2]}, progress=False),
                     r"column names must be str; got 0 \(int\)"),
    "mixed-dtypes": (lambda db, n: write_arrays(db, n, {"a": [np.zeros(2, np.int64), np.zeros(2, np.int32)]},
                                                progress=False),
                     r"sample 1: column 'a' holds int64; this value is int32"),
    "bad-kind": (lambda db, n: write_arrays(db, n, {"when": np.array(["2024-01-01"], "datetime64[D]")},
                                            progress=False),
                 r"column 'when' of dtype datetime64\[D\] cannot be stored"),
    "empty": (lambda db, n: write_arrays(db, n, {"a": []}, progress=False),
              r"no rows to write into dataset .*: the columns are empty"),
    "ds-missing-key": (lambda db, n: write_dataset(db, n, [_item(0), _item(1), _item(2, title=None)], varlen=True,
                                                   progress=False),
                       r"sample 2: features have columns \[.*\], expected \[.*'title'.*\] \(missing \['title'\]\)"),
    "ds-extra-key": (lambda db, n: write_dataset(db, n, [_item(0), _item(1, extra=1)], varlen=["tokens"],
                                                 progress=False),
                     r"sample 1: features have columns .* \(unknown \['extra'\]\)"),
    "ds-shape": (lambda db, n: write_dataset(db, n, [_item(0), _item(1, image=np.zeros((3, 2, 1), np.uint8))],
                                             varlen=True, progress=False),
                 r"sample 1: column 'image' holds arrays of shape \(3, 2, 2\); this value has shape \(3, 2, 1\)"),
    "ds-dtype": (lambda db, n: write_dataset(db, n, [_item(0), _item(1, tokens=np.zeros(3, np.int64))],
                                             varlen=True, progress=False),
                 r"sample 1: column 'tokens' holds int32; this value is int64"),
    "ds-fixed-length": (lambda db, n: write_dataset(db, n, [_item(0), _item(3)], progress=False),
                        r"sample 1: column 'tokens' holds arrays of shape \(0,\); this value has shape \(3,\)"),
    "ds-number": (lambda db, n: write_dataset(db, n, [_item(0), _item(1, count=2.5)], varlen=True, progress=False),
                  r"sample 1: column 'count': int values must be whole numbers; got 2.5"),
    "ds-label-missing": (lambda db, n: write_dataset(db, n, [_item(0), (_item(1)[0], {"y": 1})], varlen=True,
                                                     progress=False),
                         r"sample 1: labels have columns \['y'\], expected \['y', 'score', 'tags'\] \(missing "
                         r"\['score', 'tags'\]\)"),
    "ds-then-pair": (lambda db, n: write_dataset(db, n, [_item(0), (np.zeros(2), 1)], varlen=True, progress=False),
                     r"sample 1: features must be a dict of columns \['image', .*\]; got ndarray"),
    "ds-varlen-unknown": (lambda db, n: write_dataset(db, n, [_item(0)], varlen=["tokens", "words"], progress=False),
                          r"varlen names columns \['words'\] that the samples do not have; their feature columns are "
                          r"\['image', "),
    "ds-varlen-2d": (lambda db, n: write_dataset(db, n, [_item(0)], varlen=["image"], progress=False),
                     r"column 'image' is stored as variable-length arrays, which are 1-D; its first value is ndarray "
                     r"of shape \(3, 2, 2\)"),
    "ds-varlen-names-single": (lambda db, n: write_dataset(db, n, [(np.zeros(2), 1)], varlen=["x"], progress=False),
                               r"varlen=\['x'\] names columns of dict samples; this dataset's features are ndarray: "
                               r"pass varlen=True"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_records_write_nothing(db: Database, table_name: str, staged: list[str], case: str) -> None:
    write, message = BAD[case]
    with pytest.raises(InvalidInputError, match=message):
        write(db, table_name)
    assert_nothing_written(db, table_name, staged)


def test_frames_with_missing_values(db: Database, table_name: str, staged: list[str]) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is optional (pip install 'lightning-dm8[frames]')")
    pa = pytest.importorskip("pyarrow", reason="pyarrow is optional (pip install 'lightning-dm8[frames]')")
    with pytest.raises(InvalidInputError, match=r"column 'b' has a missing value \(null/NaN\) at row 2; every row "
                                                r"needs a value: drop or fill those rows first \(df.dropna\(\) or "
                                                r"df.fillna\(...\)\)"):
        write_arrays(db, table_name, pd.DataFrame({"a": [1, 2, 3], "b": [1.0, 2.0, None]}), progress=False)
    with pytest.raises(InvalidInputError, match=r"column 'b' has a missing value \(null/NaN\) at row 1; .*"
                                                r"\(Table.drop_null\(\) or pyarrow.compute.fill_null\(...\)\)"):
        write_arrays(db, table_name, pa.table({"a": [1, 2], "b": ["x", None]}), progress=False)
    with pytest.raises(InvalidInputError, match=r"column names must be str; got 0 \(int\): name the columns"):
        write_arrays(db, table_name, pd.DataFrame(np.zeros((2, 2))), progress=False)
    assert_nothing_written(db, table_name, staged)
