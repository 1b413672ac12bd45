"""Reader and writer for CIFAR-10's "python version" batch files.

Each batch is a pickle written by Python 2 (protocol 2) of a dict with
``b"data"`` (uint8, N x 3072: the red, green and blue 32x32 planes, row-major),
``b"labels"``, ``b"batch_label"`` and ``b"filenames"``; ``batches.meta`` holds
``b"label_names"``.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightning_dm8.importers._paths import require_path

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: Number of ``data_batch_*`` files in the standard download.
CIFAR10_TRAIN_BATCHES = 5

_IMAGE_SHAPE = (3, 32, 32)
_ROW_SIZE = 3 * 32 * 32
_CIFAR10_HINT = (
    "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extract it "
    "and pass its cifar-10-batches-py folder"
)

# Everything a CIFAR-10 pickle needs to rebuild its arrays and byte strings;
# any other global in a file means it is not a CIFAR batch and must not run.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that refuses any global a CIFAR batch does not use, so a forged file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict[bytes, Any]:
    """Unpickle one batch file the way Python 3 must read Python 2's strings: as bytes."""
    with open(require_path(path, _CIFAR10_HINT), "rb") as f:
        content = _BatchUnpickler(f, encoding="bytes").load()
    if not isinstance(content, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch: it holds a {type(content).__name__}, not a dict")
    return content


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one data batch as images ``(N, 3, 32, 32)`` uint8 and labels int64."""
    batch = _read_pickle(path)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"{path} is not a CIFAR-10 batch: key {exc.args[0]!r} is missing") from exc
    if data.ndim != 2 or data.shape[1] != _ROW_SIZE:
        raise ValueError(f"{path} has data of shape {data.shape}, expected (N, {_ROW_SIZE})")
    if labels.shape != (len(data),):
        raise ValueError(f"{path} has {len(data)} images but {labels.size} labels")
    return data.reshape(-1, *_IMAGE_SHAPE), labels


def load_cifar10(
    root: str | Path, batches: int = CIFAR10_TRAIN_BATCHES
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 from an extracted ``cifar-10-batches-py`` folder.

    Args:
        root: The ``cifar-10-batches-py`` folder.
        batches: Number of ``data_batch_*`` files; the standard download has 5.

    Returns:
        ``{"train": (images, labels), "test": (images, labels)}``: images uint8
        ``(N, 3, 32, 32)``, labels int64 ``(N,)``; train is the data batches
        concatenated in order.

    Raises:
        FileNotFoundError: If the folder or a batch file is missing; the message says where to get it.
        ValueError: If a batch is not a CIFAR-10 batch or its arrays have the wrong size.
    """
    root = require_path(root, _CIFAR10_HINT, folder=True)
    train = [_read_batch(root / f"data_batch_{i}") for i in range(1, batches + 1)]
    return {
        "train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        "test": _read_batch(root / "test_batch"),
    }


def cifar10_classes(root: str | Path) -> list[str]:
    """Read the class names, in label order, from ``batches.meta``.

    Args:
        root: The ``cifar-10-batches-py`` folder.

    Returns:
        The class names, e.g. ``["airplane", "automobile", ...]``.

    Raises:
        FileNotFoundError: If the folder or ``batches.meta`` is missing.
        ValueError: If ``batches.meta`` has no ``label_names``.
    """
    path = require_path(root, _CIFAR10_HINT, folder=True) / "batches.meta"
    meta = _read_pickle(path)
    if b"label_names" not in meta:
        raise ValueError(f"{path} is not a CIFAR-10 batches.meta: key b'label_names' is missing")
    return [name.decode() if isinstance(name, bytes) else str(name) for name in meta[b"label_names"]]


def _write_pickle(path: Path, content: dict[bytes, Any]) -> None:
    """Write one file with the protocol of the original Python 2 files."""
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=2)


def _batch_dict(x: np.ndarray, y: np.ndarray, batch_label: str, first_index: int) -> dict[bytes, Any]:
    """Build one batch's dict with the standard keys and value types."""
    return {
        b"batch_label": batch_label.encode(),
        b"labels": [int(label) for label in y],
        b"data": np.ascontiguousarray(x, dtype=np.uint8).reshape(len(x), _ROW_SIZE),
        b"filenames": [f"image_{first_index + i:05d}.png".encode() for i in range(len(x))],
    }


def _check_images(name: str, x: np.ndarray, y: np.ndarray) -> None:
    """Reject arrays that the standard format cannot hold."""
    if x.dtype != np.uint8 or x.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(f"{name} images must be uint8 of shape (N, 3, 32, 32), got {x.dtype} {x.shape}")
    if np.shape(y) != (len(x),):
        raise ValueError(f"{name} has {len(x)} images but labels of shape {np.shape(y)}")


def write_cifar10_batches(
    root: str | Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    batches: int = CIFAR10_TRAIN_BATCHES,
    classes: Sequence[str] = CIFAR10_CLASSES,
) -> Path:
    """Write a data set in the exact CIFAR-10 python format.

    Tests and documentation use it to make tiny data sets that the reader
    treats like the real download.

    Args:
        root: Folder to write into, created if needed.
        train: ``(images, labels)``, images uint8 ``(N, 3, 32, 32)``; split in
            order over the data batches.
        test: ``(images, labels)`` for ``test_batch``.
        batches: Number of ``data_batch_*`` files.
        classes: Class names for ``batches.meta``.

    Returns:
        ``root`` as a Path.

    Raises:
        ValueError: If images are not uint8 ``(N, 3, 32, 32)`` or labels do not match them.
    """
    _check_images("train", *train)
    _check_images("test", *test)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    x_train, y_train = train
    first = 0
    for i, (x, y) in enumerate(
        zip(np.array_split(x_train, batches), np.array_split(np.asarray(y_train), batches), strict=True), start=1
    ):
        _write_pickle(root / f"data_batch_{i}", _batch_dict(x, y, f"training batch {i} of {batches}", first))
        first += len(x)
    _write_pickle(root / "test_batch", _batch_dict(*test, "testing batch 1 of 1", first))
    meta = {
        b"num_cases_per_batch": -(-len(x_train) // batches),
        b"label_names": [name.encode() for name in classes],
        b"num_vis": _ROW_SIZE,
    }
    _write_pickle(root / "batches.meta", meta)
    return root
