"""IDX reader: every dtype and rank, gzip or plain, pairs, Fashion-MNIST layout and the error messages."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from lightning_dm8.importers import FASHION_MNIST_CLASSES, load_fashion_mnist, load_idx_pair, read_idx

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, values: np.ndarray, code: int) -> Path:
    """Write ``values`` as IDX per the spec: magic 0x0000<code><ndim>, big-endian uint32 dims, big-endian data."""
    header = struct.pack(">HBB", 0, code, values.ndim) + struct.pack(f">{values.ndim}I", *values.shape)
    payload = header + values.astype(values.dtype.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


CASES = [
    (0x08, np.array([[0, 1, 127], [128, 254, 255]], dtype=np.uint8)),
    (0x09, np.array([-128, -1, 0, 1, 127], dtype=np.int8)),
    (0x0B, np.array([[[-32768, -2], [258, 32767]]], dtype=np.int16)),
    (0x0C, np.array([-(2**31), -70000, 0, 65536 + 3, 2**31 - 1], dtype=np.int32)),
    (0x0D, np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 7 - 1.5),
    (0x0E, np.array([[-1e300, np.pi], [2.5e-310, 0.0]], dtype=np.float64)),
]


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize(("code", "values"), CASES)
def test_read_idx_round_trips_every_dtype_and_rank(tmp_path: Path, suffix: str, code: int, values: np.ndarray) -> None:
    path = write_idx(tmp_path / f"data-idx{values.ndim}-ubyte{suffix}", values, code)
    result = read_idx(path)
    assert result.dtype == values.dtype
    assert result.dtype.isnative
    assert result.shape == values.shape
    np.testing.assert_array_equal(result, values)


def test_read_idx_reads_big_endian_bytes_as_written_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "hand.idx"
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    np.testing.assert_array_equal(read_idx(path), np.array([0x0102, -2], dtype=np.int16))


def test_read_idx_gives_a_writable_array(tmp_path: Path) -> None:
    result = read_idx(write_idx(tmp_path / "x.gz", np.zeros((2, 2), np.uint8), 0x08))
    result[0, 0] = 9
    assert result[0, 0] == 9


@pytest.mark.parametrize(
    ("magic", "shown"),
    [(bytes([1, 2, 8, 1]), "0x01020801"), (bytes([0, 0, 0x0A, 1]), "0x00000A01")],
)
def test_read_idx_rejects_a_bad_magic_number(tmp_path: Path, magic: bytes, shown: str) -> None:
    path = tmp_path / "bad-magic.idx"
    path.write_bytes(magic + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match=f"bad-magic.idx.*bad magic number {shown}"):
        read_idx(path)


def test_read_idx_rejects_truncated_data(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "short.gz", np.arange(6, dtype=np.int32).reshape(2, 3), 0x0C)
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-4]))
    with pytest.raises(ValueError, match=r"short.gz is truncated: expected 24 data bytes .* found 20"):
        read_idx(path)


def test_read_idx_rejects_a_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "header.idx"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match=r"header.idx is truncated: expected 16 header bytes .* found 8"):
        read_idx(path)


def test_read_idx_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.gz"):
        read_idx(tmp_path / "absent.gz")


def test_load_idx_pair_returns_uint8_images_and_int64_labels(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([9, 0], dtype=np.uint8)
    x, y = load_idx_pair(write_idx(tmp_path / "i.gz", images, 0x08), write_idx(tmp_path / "l.gz", labels, 0x08))
    np.testing.assert_array_equal(x, images)
    assert y.dtype == np.int64
    assert y.tolist() == [9, 0]


def test_load_idx_pair_rejects_mismatched_counts(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "i.gz", np.zeros((3, 2, 2), np.uint8), 0x08)
    labels = write_idx(tmp_path / "l.gz", np.zeros(2, np.uint8), 0x08)
    with pytest.raises(ValueError, match="i.gz has 3 images but .*l.gz has 2 labels"):
        load_idx_pair(images, labels)


def test_load_idx_pair_rejects_images_that_are_not_uint8_3d(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "i.gz", np.zeros((3, 4), np.uint8), 0x08)
    labels = write_idx(tmp_path / "l.gz", np.zeros(3, np.uint8), 0x08)
    with pytest.raises(ValueError, match=r"i.gz must hold uint8 images of shape \(N, H, W\)"):
        load_idx_pair(images, labels)


def write_fashion_layout(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write tiny train/test parts under the four standard Fashion-MNIST file names."""
    rng = np.random.default_rng(1)
    parts = {
        "train": (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([0, 9, 3, 3, 1], dtype=np.uint8)),
        "test": (rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), np.array([7, 2], dtype=np.uint8)),
    }
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", parts[split][0], 0x08)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", parts[split][1], 0x08)
    return parts


def test_load_fashion_mnist_reads_the_standard_file_names(tmp_path: Path) -> None:
    parts = write_fashion_layout(tmp_path)
    loaded = load_fashion_mnist(root=tmp_path)
    assert set(loaded) == {"train", "test"}
    for split, (images, labels) in parts.items():
        np.testing.assert_array_equal(loaded[split][0], images)
        np.testing.assert_array_equal(loaded[split][1], labels.astype(np.int64))


def test_load_fashion_mnist_says_how_to_install_a_missing_file(tmp_path: Path) -> None:
    write_fashion_layout(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    expected = (
        r"t10k-labels-idx1-ubyte.gz not found: install Debian's package dataset-fashion-mnist "
        r"\(apt-get install dataset-fashion-mnist\) or pass root= to a folder with the four IDX files"
    )
    with pytest.raises(FileNotFoundError, match=expected):
        load_fashion_mnist(root=tmp_path)


def test_fashion_mnist_classes() -> None:
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top"
    assert FASHION_MNIST_CLASSES[9] == "Ankle boot"


@pytest.mark.skipif(
    not REAL_FASHION_MNIST.is_dir(),
    reason=f"{REAL_FASHION_MNIST} absent: apt-get install dataset-fashion-mnist to run this test",
)
def test_load_fashion_mnist_reads_the_real_files() -> None:
    loaded = load_fashion_mnist()
    assert loaded["train"][0].shape == (60000, 28, 28)
    assert loaded["test"][0].shape == (10000, 28, 28)
    for images, labels in loaded.values():
        assert images.dtype == np.uint8
        assert labels.dtype == np.int64
        assert sorted(np.unique(labels).tolist()) == list(range(len(FASHION_MNIST_CLASSES)))
    assert np.bincount(loaded["train"][1]).tolist() == [6000] * 10
