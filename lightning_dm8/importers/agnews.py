"""Reader and writer for the AG News topic classification CSV files.

Each row of ``train.csv`` / ``test.csv`` is ``"class","title","description"``
with no header, class index 1..4, every field quoted and inner quotes doubled.
The text is kept as it is in the file (``\\`` escapes and ``#39;`` entities
included), so imports match what other tools read from the same files.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lightning_dm8.importers._paths import require_path

AGNEWS_CLASSES: tuple[str, ...] = ("World", "Sports", "Business", "Sci/Tech")

_AGNEWS_HINT = (
    "get the AG News train.csv and test.csv from "
    "https://github.com/mhjabreel/CharCnn_Keras/tree/master/data/ag_news_csv "
    "(or the torchtext mirror of ag_news_csv) and pass their folder"
)


def read_agnews_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read one AG News CSV file.

    Args:
        path: ``train.csv`` or ``test.csv``.

    Returns:
        ``(texts, labels)``: each text is the title, a space, then the description;
        labels are int64 0..3, indexing :data:`AGNEWS_CLASSES`.

    Raises:
        FileNotFoundError: If ``path`` is missing; the message says where to get it.
        ValueError: If a row does not have 3 fields or its class is not 1..4,
            naming the file and line.
    """
    path = require_path(path, _AGNEWS_HINT)
    texts: list[str] = []
    labels: list[int] = []
    valid_classes = {str(i) for i in range(1, len(AGNEWS_CLASSES) + 1)}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for row in reader:
            if len(row) != 3:
                raise ValueError(f"{path}, line {reader.line_num}: expected 3 fields, found {len(row)}")
            label, title, description = row
            if label.strip() not in valid_classes:
                raise ValueError(f"{path}, line {reader.line_num}: class {label!r} is not one of 1..4")
            texts.append(f"{title} {description}")
            labels.append(int(label) - 1)
    return texts, np.array(labels, dtype=np.int64)


def load_agnews(root: str | Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """Load AG News's train and test parts from a folder with ``train.csv`` and ``test.csv``.

    Args:
        root: The folder.

    Returns:
        ``{"train": (texts, labels), "test": (texts, labels)}`` as from :func:`read_agnews_csv`.
    """
    root = Path(root)
    return {split: read_agnews_csv(root / f"{split}.csv") for split in ("train", "test")}


def write_agnews_csv(path: str | Path, rows: Iterable[tuple[int, str, str]]) -> Path:
    """Write rows in the exact AG News format, for tests and documentation.

    Args:
        path: The file to write.
        rows: ``(class index 1..4, title, description)`` tuples.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerows((str(label), title, description) for label, title, description in rows)
    return path
