"""write_arrays / write_dataset: round trips through DatasetTable on every backend, replace and append, and every
bad input failing with a message that says what is wrong while leaving nothing behind."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from torch.utils.data import Dataset, TensorDataset

from lightning_dm8 import (
    AuthenticationError,
    Database,
    DatabaseUnavailableError,
    DatasetTable,
    InvalidInputError,
    TableExistsError,
    write_arrays,
    write_dataset,
)
from lightning_dm8.tables import registry
from tables.support import (
    MYSQL_URL,
    assert_append_refused,
    assert_no_staging_left,
    assert_nothing_written,
    read_all,
)

CIFAR_ROWS = 50_000


def assert_same_sample(got: Any, expected: Any) -> None:
    """Bit-exact equality, dtype and shape included (str and bytes compared as such)."""
    if isinstance(expected, (str, bytes)):
        assert type(got) is type(expected) and got == expected
        return
    expected = np.asarray(expected)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype.newbyteorder("<") and got.shape == expected.shape
    assert got.tobytes() == expected.astype(got.dtype).tobytes()


def assert_round_trip(table: DatasetTable, features: Any, labels: Any, spots: list[int]) -> None:
    """All rows through one range query, then single items ``table[i]``, equal to what was written."""
    assert len(table) == len(features)
    got_features, got_labels = read_all(table)
    if isinstance(features, np.ndarray):
        assert_same_sample(got_features, features)
    else:
        assert len(got_features) == len(features)
        for got, expected in zip(got_features, features, strict=True):
            assert_same_sample(got, expected)
    expected_labels = None if labels is None else np.asarray(labels)
    if expected_labels is None:
        assert got_labels is None
    else:
        assert got_labels.tolist() == expected_labels.tolist()
    for i in spots:
        sample, label = table[i]
        assert_same_sample(sample, features[i])
        assert label == (None if expected_labels is None else expected_labels[i].item())
        assert type(label) is (type(None) if expected_labels is None else type(expected_labels[i].item()))


@pytest.mark.slow
def test_cifar_sized_arrays_round_trip(db: Database, table_name: str) -> None:
    rng = np.random.default_rng(2024)
    features = rng.integers(0, 256, (CIFAR_ROWS, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, CIFAR_ROWS)
    start = time.monotonic()
    info = write_arrays(db, table_name, features, labels, progress=False)
    written = time.monotonic()
    stored = (info.row_count, info.codec.kind, info.codec.dtype, info.codec.shape)
    assert stored == (CIFAR_ROWS, "array", "|u1", (3, 32, 32))
    table = DatasetTable(db, table_name)
    spots = [0, 1, CIFAR_ROWS // 2, CIFAR_ROWS - 1, -1, *rng.integers(0, CIFAR_ROWS, 20).tolist()]
    assert_round_trip(table, features, labels, spots)
    print(f"\n{db.backend.name}: wrote {CIFAR_ROWS} CIFAR samples in {written - start:.1f} s, "
          f"read them back in {time.monotonic() - written:.1f} s")
    assert table.validate().row_count == CIFAR_ROWS


def _varlen(rng: np.random.Generator) -> tuple[Any, Any]:
    lengths = rng.permutation(np.repeat(np.arange(51), 3))
    return [rng.integers(-(2**62), 2**62, n, dtype=np.int64) for n in lengths], rng.integers(0, 5, len(lengths))


def _text(rng: np.random.Generator) -> tuple[Any, Any]:
    texts = ["", "plain ascii", "中文文本：数据集", "emoji 😀🚀 mixed 混合", "quote ' \" ; -- \\ \n\t", "é" * 5000,
             "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 outside the BMP", "\u200b zero width"]
    return texts, rng.integers(0, 3, len(texts))


def _bytes(rng: np.random.Generator) -> tuple[Any, Any]:
    return [b"", b"\x00", rng.bytes(10), rng.bytes(20_000)], [0, 1, 2, 3]


def _float_labels(rng: np.random.Generator) -> tuple[Any, Any]:
    labels = np.array([0.1, -2.5e-300, 1.7976931348623157e308, -0.0, 3.0, 1 / 3])
    return rng.standard_normal((len(labels), 4)).astype(np.float32), labels


def _unlabelled(rng: np.random.Generator) -> tuple[Any, Any]:
    return rng.integers(0, 256, (17, 2, 2), dtype=np.uint8), None


def _big_endian(rng: np.random.Generator) -> tuple[Any, Any]:
    return rng.integers(-1000, 1000, (9, 3)).astype(">i4"), rng.integers(0, 2, 9).astype(np.int32)


def _big_endian_varlen(rng: np.random.Generator) -> tuple[Any, Any]:
    return [rng.integers(-1000, 1000, n).astype(">i4") for n in (3, 0, 5)], [0, 1, 2]


def _list_of_images(rng: np.random.Generator) -> tuple[Any, Any]:
    return [rng.integers(0, 256, (2, 5, 5), dtype=np.uint8) for _ in range(6)], list(range(6))


def _tensors(rng: np.random.Generator) -> tuple[Any, Any]:
    return torch.from_numpy(rng.standard_normal((12, 5))), torch.from_numpy(rng.integers(0, 4, 12))


def _bool_features(rng: np.random.Generator) -> tuple[Any, Any]:
    return rng.integers(0, 2, (6, 7)).astype(bool), np.array([True, False, True, True, False, False])


ROUND_TRIPS: dict[str, Callable[[np.random.Generator], tuple[Any, Any]]] = {
    "varlen-int64": _varlen, "text": _text, "bytes": _bytes, "float-labels": _float_labels,
    "unlabelled": _unlabelled, "big-endian": _big_endian, "big-endian-varlen": _big_endian_varlen,
    "list-of-images": _list_of_images, "tensors": _tensors, "bool": _bool_features,
}


@pytest.mark.parametrize("case", ROUND_TRIPS)
def test_write_arrays_round_trip(db: Database, table_name: str, case: str) -> None:
    features, labels = ROUND_TRIPS[case](np.random.default_rng(7))
    write_arrays(db, table_name, features, labels, progress=False)
    if isinstance(features, torch.Tensor):
        features, labels = features.numpy(), labels.numpy()
    if labels is not None and np.asarray(labels).dtype == bool:
        labels = np.asarray(labels).astype(np.int64)  # bool labels are stored as integers
    table = DatasetTable(db, table_name)
    assert_round_trip(table, features, labels, [0, len(features) - 1, -2])
    assert table.validate().row_count == len(features)


def test_varlen_kind_and_lengths(db: Database, table_name: str) -> None:
    features, labels = _varlen(np.random.default_rng(1))
    info = write_arrays(db, table_name, features, labels, progress=False)
    assert (info.codec.kind, info.codec.dtype) == ("varlen", "<i8")
    got, _ = read_all(DatasetTable(db, table_name))
    assert sorted({len(x) for x in got}) == list(range(51))


class PairDataset(Dataset):
    """A map-style dataset of ``(np.ndarray, int)``; ``bad`` replaces one sample to test mid-stream failures."""

    def __init__(self, n: int, shape: tuple[int, ...] = (4, 4), bad: dict[int, tuple[Any, Any]] | None = None) -> None:
        rng = np.random.default_rng(3)
        self.features = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        self.labels = rng.integers(0, 10, n).tolist()
        self.bad = bad or {}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Any:
        return self.bad.get(i, (self.features[i], self.labels[i]))


def test_write_dataset_from_tensor_dataset(db: Database, table_name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, 8, 8, generator=generator), torch.randint(0, 10, (40,), generator=generator)
    info = write_dataset(db, table_name, TensorDataset(x, y), progress=False)
    assert (info.codec.dtype, info.codec.shape, info.label_kind) == ("<f4", (3, 8, 8), "int")
    assert_round_trip(DatasetTable(db, table_name), x.numpy(), y.numpy(), [0, 39, 17])


def test_write_dataset_from_custom_dataset(db: Database, table_name: str) -> None:
    dataset = PairDataset(25)
    info = write_dataset(db, table_name, dataset, progress=False)
    assert info.row_count == 25
    assert_round_trip(DatasetTable(db, table_name), dataset.features, dataset.labels, [0, 24, 9])


def test_write_dataset_varlen(db: Database, table_name: str) -> None:
    features, labels = _varlen(np.random.default_rng(5))
    pairs = list(zip(features, labels.tolist(), strict=True))
    info = write_dataset(db, table_name, pairs, varlen=True, progress=False)
    assert info.codec.kind == "varlen"
    assert_round_trip(DatasetTable(db, table_name), features, labels, [0, len(pairs) - 1])


@pytest.mark.parametrize("varlen", [False, True], ids=["array", "varlen"])
def test_write_dataset_big_endian_samples(db: Database, table_name: str, varlen: bool) -> None:
    features = np.arange(24).astype(">f8").reshape(8, 3)
    info = write_dataset(db, table_name, list(zip(features, range(8), strict=True)), varlen=varlen, progress=False)
    assert info.codec.dtype == "<f8"
    assert_round_trip(DatasetTable(db, table_name), list(features) if varlen else features, np.arange(8), [0, 7])


def test_replace(db: Database, table_name: str, staged: list[str]) -> None:
    first = write_arrays(db, table_name, np.zeros((5, 2), np.uint8), [0] * 5, progress=False)
    features = np.arange(24, dtype=np.float64).reshape(8, 3)
    second = write_arrays(db, table_name, features, np.arange(8), if_exists="replace", progress=False)
    assert second.fingerprint != first.fingerprint
    table = DatasetTable(db, table_name)
    assert table.info().codec.shape == (3,)
    assert_round_trip(table, features, np.arange(8), [0, 7])
    assert (first.version, second.version) == (1, 2) and staged == [first.physical, second.physical]
    with db.connect("check") as conn:  # the previous version is kept (keep_versions=2) for runs still reading it
        assert [i.version for i in registry.list_versions(conn, table_name)] == [1, 2]
    third = write_arrays(db, table_name, features, np.arange(8), if_exists="replace", progress=False)
    assert third.version == 3
    assert_no_staging_left(db, staged[:1])  # the oldest version's table went once three were written
    with db.connect("check") as conn:
        assert [i.version for i in registry.list_versions(conn, table_name)] == [2, 3]


def test_append_keeps_ids_dense(db: Database, table_name: str) -> None:
    rng = np.random.default_rng(11)
    head, tail = rng.integers(0, 256, (30, 3, 4), np.uint8), rng.integers(0, 256, (12, 3, 4), np.uint8)
    first = write_arrays(db, table_name, head, np.arange(30), progress=False)
    second = write_arrays(db, table_name, tail, np.arange(30, 42), if_exists="append", progress=False)
    assert second.row_count == 42
    assert second.fingerprint != first.fingerprint
    assert second.created_at == first.created_at
    table = DatasetTable(db, table_name)
    assert table.validate().fingerprint == second.fingerprint
    assert_round_trip(table, np.concatenate([head, tail]), np.arange(42), [29, 30, 41])


def test_append_differs_from_writing_at_once(db: Database, table_name: str) -> None:
    """The fingerprint chains appends: the same rows written in one go give another fingerprint."""
    x = np.arange(20, dtype=np.int16).reshape(10, 2)
    write_arrays(db, table_name, x[:6], np.arange(6), progress=False)
    appended = write_arrays(db, table_name, x[6:], np.arange(6, 10), if_exists="append", progress=False)
    at_once = write_arrays(db, table_name, x, np.arange(10), if_exists="replace", progress=False)
    again = write_arrays(db, table_name, x, np.arange(10), if_exists="replace", progress=False)
    assert appended.fingerprint != at_once.fingerprint
    assert again.fingerprint == at_once.fingerprint


# ---------------------------------------------------------------------------------------------------- bad input

BAD_INPUTS: dict[str, tuple[Callable[[Database, str], Any], type[Exception], str]] = {
    "length-mismatch": (lambda db, n: write_arrays(db, n, np.zeros((5, 2)), [1, 2, 3], progress=False),
                        InvalidInputError, r"features has 5 rows but labels has 3; they must have the same length"),
    "labels-2d": (lambda db, n: write_arrays(db, n, np.zeros((2, 2)), [[1], [2]], progress=False),
                  InvalidInputError, r"labels must be 1-D \(one per row\); got shape \(2, 1\)"),
    "label-dtype": (lambda db, n: write_arrays(db, n, np.zeros((2, 2)), ["a", "b"], progress=False),
                    InvalidInputError, r"labels of dtype <U1 cannot be stored; use integer or float labels"),
    "feature-dtype": (lambda db, n: write_arrays(db, n, np.zeros((2, 2), complex), [1, 2], progress=False),
                      InvalidInputError, r"features of dtype complex128 cannot be stored"),
    "mixed-shapes": (lambda db, n: write_arrays(db, n, [np.zeros(3), np.zeros((2, 2))], [1, 2], progress=False),
                     InvalidInputError, r"inconsistent features: item 1 has shape \(2, 2\)"),
    "mixed-image-shapes": (lambda db, n: write_arrays(db, n, [np.zeros((2, 2)), np.zeros((3, 3))], [1, 2],
                                                      progress=False),
                           InvalidInputError, r"inconsistent shapes: item 0 has shape \(2, 2\), item 1 has \(3, 3\)"),
    "mixed-dtypes": (lambda db, n: write_arrays(db, n, [np.zeros(3, np.int64), np.zeros(3, np.int32)], [1, 2],
                                                progress=False),
                     InvalidInputError, r"inconsistent dtypes: item 0 is int64, item 1 is int32"),
    "mixed-types": (lambda db, n: write_arrays(db, n, ["text", b"bytes"], [1, 2], progress=False),
                    InvalidInputError, r"inconsistent features: item 0 is str, item 1 is bytes"),
    "empty-array": (lambda db, n: write_arrays(db, n, np.zeros((0, 3)), [], progress=False),
                    InvalidInputError, r"no rows to write into dataset .*: features is empty"),
    "empty-list": (lambda db, n: write_arrays(db, n, [], None, progress=False),
                   InvalidInputError, r"no rows to write into dataset .*: features is empty"),
    "empty-dataset": (lambda db, n: write_dataset(db, n, [], progress=False),
                      InvalidInputError, r"no rows to write into dataset .*: the dataset is empty"),
    "bad-if-exists": (lambda db, n: write_arrays(db, n, np.zeros((2, 2)), [1, 2], if_exists="overwrite",
                                                 progress=False),
                      InvalidInputError, r"if_exists must be one of \('fail', 'replace', 'append'\); got 'overwrite'"),
    "mid-stream-shape": (lambda db, n: write_dataset(db, n, PairDataset(50, bad={37: (np.zeros((4, 5), np.uint8), 1)}),
                                                     progress=False),
                         InvalidInputError,
                         r"inconsistent shapes: sample 0 has shape \(4, 4\), sample 37 has \(4, 5\)"),
    "mid-stream-dtype": (lambda db, n: write_dataset(db, n, PairDataset(50, bad={49: (np.zeros((4, 4)), 1)}),
                                                     progress=False),
                         InvalidInputError, r"inconsistent dtypes: sample 0 is uint8, sample 49 is float64"),
    "mid-stream-no-label": (lambda db, n: write_dataset(db, n, PairDataset(50, bad={20: (np.zeros((4, 4), np.uint8),
                                                                                        None)}), progress=False),
                            InvalidInputError,
                            r"sample 20: the label is None; every row of a labelled dataset needs one"),
    "fractional-label": (lambda db, n: write_dataset(db, n, [(np.zeros(2), 1), (np.zeros(2), 2), (np.zeros(2), 0.5)],
                                                     progress=False),
                         InvalidInputError, r"sample 2: label 0.5 is not a whole number, but the dataset's labels are "
                                            r"integers"),
    "not-a-pair": (lambda db, n: write_dataset(db, n, PairDataset(5, bad={3: np.zeros((4, 4), np.uint8)}),
                                               progress=False),
                   InvalidInputError, r"dataset item 3 is ndarray; write_dataset needs \(features, label\) pairs"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_writes_nothing(db: Database, table_name: str, staged: list[str], case: str) -> None:
    write, error, message = BAD_INPUTS[case]
    with pytest.raises(error, match=message):
        write(db, table_name)
    assert_nothing_written(db, table_name, staged)
    if case.startswith("mid-stream"):
        assert len(staged) == 1  # the staging table was created, filled in part, then dropped


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_name(db: Database, name: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"dataset name {name!r} cannot be used as a table name: it is empty"):
        write_arrays(db, name, np.zeros((1, 1)), [1], progress=False)


# backend: (characters appended to a fresh table name, what the message says)
_TOO_LONG = {
    "postgresql": ("x" * 60, "PostgreSQL names hold at most 63 bytes of UTF-8; it has 72"),
    "mysql": ("x" * 60, "MySQL/MariaDB names hold at most 64 characters; it has 72"),
    "dm": ("数" * 40, "DM8 names hold at most 128 bytes of UTF-8; it has 132"),
    "sqlite": ("x" * 121, "is 133 characters long; use at most 120"),
}


def test_name_the_backend_cannot_hold(db: Database, backend: str, table_name: str, staged: list[str]) -> None:
    suffix, message = _TOO_LONG[backend]
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        write_arrays(db, table_name + suffix, np.zeros((1, 1)), [1], progress=False)
    assert staged == []


def test_existing_table_with_fail(db: Database, table_name: str, staged: list[str]) -> None:
    info = write_arrays(db, table_name, np.ones((3, 2)), [1, 2, 3], progress=False)
    staged.clear()
    with pytest.raises(TableExistsError, match=rf"dataset table '{table_name}' already exists .*if_exists='replace'"):
        write_arrays(db, table_name, np.zeros((4, 2)), [1, 2, 3, 4], progress=False)
    assert staged == []
    assert DatasetTable(db, table_name).validate() == info


def test_existing_unregistered_table(db: Database, table_name: str) -> None:
    with db.begin() as conn:
        sa.Table(table_name, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)).create(conn)
    for if_exists in ("fail", "append", "replace"):
        refused = rf"table '{table_name}' .* exists but is not a dataset .* it is left alone; .*force=True"
        with pytest.raises(TableExistsError, match=refused):
            write_arrays(db, table_name, np.ones((3, 2)), [1, 2, 3], if_exists=if_exists, progress=False)


@pytest.mark.parametrize(
    ("features", "labels", "new_rows"),
    [
        (np.ones((2, 3, 2)), [1, 2], r"array \(<f8, shape \(3, 2\)\) with int labels"),
        (np.ones((2, 3)), [0.5, 1.5], r"array \(<f8, shape \(3,\)\) with float labels"),
        (np.ones((2, 3), np.float32), [1, 2], r"array \(<f4, shape \(3,\)\) with int labels"),
        (["text", "rows"], [1, 2], r"text \(None, shape \(\)\) with int labels"),
    ],
    ids=["shape", "label-kind", "dtype", "kind"],
)
def test_append_mismatch_leaves_the_table_alone(db: Database, table_name: str, features: Any, labels: Any,
                                                new_rows: str) -> None:
    assert_append_refused(db, table_name, (np.zeros((4, 3)), [1, 2, 3, 4]), (features, labels),
                          r"array features \(<f8, shape \(3,\)\) with int labels", new_rows)


def test_append_failing_mid_stream_is_rolled_back(db: Database, table_name: str) -> None:
    dataset = PairDataset(30)
    info = write_dataset(db, table_name, dataset, progress=False)
    bad = PairDataset(30, bad={25: (np.zeros((2, 2), np.uint8), 1)})
    with pytest.raises(InvalidInputError, match=r"inconsistent shapes: sample 0 has shape \(4, 4\), sample 25"):
        write_dataset(db, table_name, bad, if_exists="append", progress=False)
    table = DatasetTable(db, table_name)
    assert table.validate() == info
    assert_round_trip(table, dataset.features, dataset.labels, [29])


def test_unreachable_server_writes_nothing(db: Database, backend: str, table_name: str, staged: list[str],
                                           tmp_path) -> None:
    url = sa.make_url(db.sa_url)
    bad = url.set(database=str(tmp_path / "missing" / "x.db")) if backend == "sqlite" else url.set(port=1)
    advice = "the database file's folder exists" if backend == "sqlite" else "check that the server is running"
    with pytest.raises(DatabaseUnavailableError, match=rf"prepare the dataset registry .*{advice}"):
        write_arrays(Database(bad, connect_timeout=2), table_name, np.ones((2, 2)), [1, 2], progress=False)
    assert_nothing_written(db, table_name, staged)


def test_wrong_password_writes_nothing(table_name: str, staged: list[str]) -> None:
    bad = sa.make_url(MYSQL_URL).set(username="ldm8_no_such_user", password="pw-never-shown")
    with pytest.raises(AuthenticationError, match=r"Access denied for user 'ldm8_no_such_user'") as info:
        write_arrays(Database(bad), table_name, np.ones((2, 2)), [1, 2], progress=False)
    assert "pw-never-shown" not in str(info.value)
    good = Database(MYSQL_URL)
    assert_nothing_written(good, table_name, staged)
    good.dispose()


def _planner_rows(db: Database, name: str) -> int:
    with db.connect("read planner statistics") as conn:
        if db.backend.name == "postgresql":
            sql = "SELECT reltuples FROM pg_class WHERE relname = :name"
        else:
            sql = "SELECT n_rows FROM mysql.innodb_table_stats WHERE database_name = DATABASE() AND table_name = :name"
        return int(conn.execute(sa.text(sql), {"name": name}).scalar_one())


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_written_and_appended_tables_have_planner_statistics(db: Database, table_name: str) -> None:
    info = write_arrays(db, table_name, np.zeros((3000, 4), np.uint8), np.arange(3000), progress=False)
    assert _planner_rows(db, info.physical) == 3000
    write_arrays(db, table_name, np.zeros((2000, 4), np.uint8), np.arange(2000), if_exists="append", progress=False)
    assert _planner_rows(db, info.physical) == 5000
    if db.backend.name == "postgresql":  # what the statistics are for: an index range scan, no sort
        with db.connect("explain a block read") as conn:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(
                f'EXPLAIN SELECT * FROM "{info.physical}" WHERE row_id BETWEEN 0 AND 255 ORDER BY row_id'))
        assert "Index Scan" in plan and "Sort" not in plan, plan
