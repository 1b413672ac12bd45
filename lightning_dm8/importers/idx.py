"""Reader for the IDX file format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the
number of dimensions), one big-endian uint32 per dimension, then the values in
big-endian, C order. Files are usually gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from lightning_dm8.importers._paths import require_path

#: IDX dtype code -> numpy dtype of the values as stored (big-endian).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FASHION_MNIST_HINT = (
    "install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
    "or pass root= to a folder with the four IDX files"
)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzip-compressed (``.gz``) or plain.

    Args:
        path: The IDX file.

    Returns:
        A native-endian array of the declared dtype and shape.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the magic number is not an IDX one, or the file is shorter
            or longer than its header declares.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        found = raw[:4].hex().upper() or "nothing"
        raise ValueError(f"{path} is not an IDX file: bad magic number 0x{found}")
    dtype = IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{path} is truncated: expected {header_size} header bytes for {ndim} dimensions, found {len(raw)}"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_size
    if actual != expected:
        problem = "is truncated" if actual < expected else "has trailing bytes"
        raise ValueError(f"{path} {problem}: expected {expected} data bytes for shape {shape}, found {actual}")
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def load_idx_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an MNIST-style pair of image and label files.

    Args:
        images_path: IDX file of uint8 images, shape ``(N, H, W)``.
        labels_path: IDX file of labels, shape ``(N,)``.

    Returns:
        ``(images, labels)``: uint8 ``(N, H, W)`` and int64 ``(N,)``.

    Raises:
        ValueError: If either file has the wrong dtype or rank, or the counts differ.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{images_path} must hold uint8 images of shape (N, H, W), found {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(f"{labels_path} must hold labels of shape (N,), found shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    return images, labels.astype(np.int64)


def load_fashion_mnist(root: str | Path = FASHION_MNIST_ROOT) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST's train and test parts from the four standard IDX files.

    The default ``root`` is where Debian's ``dataset-fashion-mnist`` package puts
    them, so no download is ever needed.

    Args:
        root: Folder with ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.

    Returns:
        ``{"train": (images, labels), "test": (images, labels)}`` as from :func:`load_idx_pair`.

    Raises:
        FileNotFoundError: If one of the four files is missing; the message says how to get them.
    """
    root = Path(root)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = require_path(root / f"{prefix}-images-idx3-ubyte.gz", _FASHION_MNIST_HINT)
        labels = require_path(root / f"{prefix}-labels-idx1-ubyte.gz", _FASHION_MNIST_HINT)
        parts[split] = load_idx_pair(images, labels)
    return parts
