"""CIFAR-10 python batches: writer/reader round trip, a batch pickled by hand per the spec, and errors."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lightning_dm8.importers import CIFAR10_CLASSES, cifar10_classes, load_cifar10, write_cifar10_batches


def random_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def test_writer_and_reader_round_trip(tmp_path: Path) -> None:
    train, test = random_images(7, 0), random_images(3, 1)
    write_cifar10_batches(tmp_path, train, test)
    loaded = load_cifar10(tmp_path)
    for split, (x, y) in (("train", train), ("test", test)):
        np.testing.assert_array_equal(loaded[split][0], x)
        np.testing.assert_array_equal(loaded[split][1], y)
        assert loaded[split][0].dtype == np.uint8
        assert loaded[split][1].dtype == np.int64
    assert cifar10_classes(tmp_path) == list(CIFAR10_CLASSES)


def test_writer_uses_the_standard_keys_types_and_protocol(tmp_path: Path) -> None:
    train, test = random_images(7, 2), random_images(2, 3)
    write_cifar10_batches(tmp_path, train, test, classes=["a", "b"])
    sizes = []
    for i in range(1, 6):
        raw = (tmp_path / f"data_batch_{i}").read_bytes()
        assert raw[:2] == b"\x80\x02"
        batch = pickle.loads(raw, encoding="bytes")
        assert set(batch) == {b"data", b"labels", b"batch_label", b"filenames"}
        assert batch[b"batch_label"] == f"training batch {i} of 5".encode()
        assert batch[b"data"].dtype == np.uint8
        assert batch[b"data"].shape[1] == 3072
        assert all(type(label) is int for label in batch[b"labels"])
        assert all(isinstance(name, bytes) for name in batch[b"filenames"])
        sizes.append(len(batch[b"labels"]))
    assert sizes == [2, 2, 1, 1, 1]
    first = pickle.loads((tmp_path / "data_batch_1").read_bytes(), encoding="bytes")
    np.testing.assert_array_equal(first[b"data"][1, 1024:2048], train[0][1, 1].reshape(-1))
    meta = pickle.loads((tmp_path / "batches.meta").read_bytes(), encoding="bytes")
    assert meta[b"label_names"] == [b"a", b"b"]
    assert cifar10_classes(tmp_path) == ["a", "b"]


def pickle_batch_by_hand(path: Path, red: np.ndarray, green: np.ndarray, blue: np.ndarray, labels: list[int]) -> None:
    """Write one batch exactly as the CIFAR-10 page describes, without the package's writer."""
    n = len(labels)
    data = np.concatenate([red.reshape(n, 1024), green.reshape(n, 1024), blue.reshape(n, 1024)], axis=1)
    batch = {
        b"batch_label": b"hand-made batch",
        b"labels": labels,
        b"data": data.astype(np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def test_reader_follows_the_format_spec_for_a_hand_pickled_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    planes = {}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        red, green, blue = (rng.integers(0, 256, (2, 32, 32), dtype=np.uint8) for _ in range(3))
        labels = rng.integers(0, 10, 2).tolist()
        pickle_batch_by_hand(tmp_path / name, red, green, blue, labels)
        planes[name] = (red, green, blue, labels)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({b"num_cases_per_batch": 2, b"label_names": [b"cat", b"dog"], b"num_vis": 3072}, f, protocol=2)

    loaded = load_cifar10(tmp_path)
    red, green, blue, labels = planes["test_batch"]
    x_test, y_test = loaded["test"]
    np.testing.assert_array_equal(x_test[:, 0], red)
    np.testing.assert_array_equal(x_test[:, 1], green)
    np.testing.assert_array_equal(x_test[:, 2], blue)
    assert y_test.tolist() == labels
    red3 = planes["data_batch_3"][0]
    assert loaded["train"][0].shape == (10, 3, 32, 32)
    assert loaded["train"][0][4, 0, 31, 0] == red3[0, 31, 0]
    assert loaded["train"][1].tolist() == sum((planes[f"data_batch_{i}"][3] for i in range(1, 6)), [])
    assert cifar10_classes(tmp_path) == ["cat", "dog"]


class Python2Pickler(pickle._Pickler):
    """Pickles the way Python 2 with numpy 1 wrote the real files: strings as BINSTRING, ``numpy.core`` globals."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_as_python2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        name = name or obj.__qualname__
        module = "numpy.core.multiarray" if name == "_reconstruct" else obj.__module__
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_as_python2_str
    dispatch[str] = save_as_python2_str
    dispatch[type] = save_global


def test_reader_loads_batches_pickled_the_way_python_2_did(tmp_path: Path) -> None:
    train, test = random_images(5, 15), random_images(300, 16)
    write_cifar10_batches(tmp_path, train, test)
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        content = pickle.loads((tmp_path / name).read_bytes(), encoding="bytes")
        with open(tmp_path / name, "wb") as f:
            Python2Pickler(f, protocol=2).dump(content)
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in (tmp_path / "test_batch").read_bytes()
    loaded = load_cifar10(tmp_path)
    np.testing.assert_array_equal(loaded["train"][0], train[0])
    np.testing.assert_array_equal(loaded["test"][0], test[0])
    np.testing.assert_array_equal(loaded["test"][1], test[1])
    assert cifar10_classes(tmp_path) == list(CIFAR10_CLASSES)


def test_writer_accepts_another_batch_count(tmp_path: Path) -> None:
    train = random_images(4, 5)
    write_cifar10_batches(tmp_path, train, random_images(1, 6), batches=2)
    assert not (tmp_path / "data_batch_3").exists()
    np.testing.assert_array_equal(load_cifar10(tmp_path, batches=2)["train"][0], train[0])


def test_missing_folder_says_where_to_get_cifar(tmp_path: Path) -> None:
    expected = (
        r"folder .*nowhere not found: download https://www\.cs\.toronto\.edu/~kriz/cifar-10-python\.tar\.gz, "
        r"extract it and pass its cifar-10-batches-py folder"
    )
    with pytest.raises(FileNotFoundError, match=expected):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere not found"):
        cifar10_classes(tmp_path / "nowhere")


def test_missing_batch_file_is_named(tmp_path: Path) -> None:
    write_cifar10_batches(tmp_path, random_images(5, 7), random_images(1, 8))
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_3 not found: download .*cifar-10-python\.tar\.gz"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize(
    ("name", "batch", "message"),
    [
        ("test_batch", {b"data": np.zeros((1, 3000), np.uint8), b"labels": [0]}, r"\(1, 3000\), expected \(N, 3072\)"),
        ("data_batch_2", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "has 2 images but 1 labels"),
        ("data_batch_4", {b"labels": [0]}, "is not a CIFAR-10 batch: key b'data' is missing"),
    ],
)
def test_wrong_arrays_name_the_file(tmp_path: Path, name: str, batch: dict[bytes, Any], message: str) -> None:
    write_cifar10_batches(tmp_path, random_images(5, 9), random_images(1, 10))
    with open(tmp_path / name, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(ValueError, match=f"{name} .*{message}"):
        load_cifar10(tmp_path)


class _Forged:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_reader_refuses_pickles_that_would_run_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cifar10_batches(tmp_path, random_images(5, 13), random_images(1, 14))
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": _Forged(), b"labels": []}, f, protocol=2)
    message = r"global (__builtin__|builtins)\.print is not allowed in a CIFAR-10 batch"
    with pytest.raises(pickle.UnpicklingError, match=message):
        load_cifar10(tmp_path)
    assert "code ran" not in capsys.readouterr().out


def test_writer_rejects_images_of_the_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"train images must be uint8 of shape \(N, 3, 32, 32\)"):
        write_cifar10_batches(tmp_path, (np.zeros((2, 32, 32, 3), np.uint8), np.zeros(2)), random_images(1, 1))
