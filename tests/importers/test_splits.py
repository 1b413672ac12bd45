"""The shared deterministic train/test split."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_dm8.importers import split_train_test


def test_split_covers_every_index_once_and_is_sorted() -> None:
    train, test = split_train_test(10, test_fraction=0.3, seed=4)
    assert len(test) == 3
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(10))
    assert train.tolist() == sorted(train.tolist())
    assert test.tolist() == sorted(test.tolist())
    assert train.dtype == test.dtype == np.int64


def test_split_is_deterministic_per_seed() -> None:
    first = split_train_test(50, seed=7)
    again = split_train_test(50, seed=7)
    other = split_train_test(50, seed=8)
    assert [a.tolist() for a in first] == [a.tolist() for a in again]
    assert first[1].tolist() != other[1].tolist()


def test_split_keeps_both_parts_non_empty() -> None:
    assert [len(part) for part in split_train_test(2, test_fraction=0.01)] == [1, 1]
    assert [len(part) for part in split_train_test(3, test_fraction=0.99)] == [1, 2]


@pytest.mark.parametrize(
    ("n", "fraction", "message"), [(1, 0.2, "at least 2 samples"), (5, 0.0, "strictly"), (5, 1.0, "strictly")]
)
def test_split_rejects_bad_arguments(n: int, fraction: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_train_test(n, test_fraction=fraction)
