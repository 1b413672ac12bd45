"""The one deterministic train/test split shared by every importer whose format has no split of its own."""

from __future__ import annotations

import numpy as np


def split_train_test(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into train and test indices with a seeded permutation.

    The same ``(n, test_fraction, seed)`` always gives the same split, so a data
    set imported twice lands in the database identically. Each part is sorted,
    keeping the source's order within it.

    Args:
        n: Number of samples; at least 2, so both parts get one.
        test_fraction: Share of samples for the test part, strictly between 0 and 1.
        seed: Seed of the permutation.

    Returns:
        ``(train_indices, test_indices)``, int64 arrays that together cover ``range(n)`` once.

    Raises:
        ValueError: If ``n < 2`` or ``test_fraction`` is not strictly between 0 and 1.
    """
    if n < 2:
        raise ValueError(f"need at least 2 samples to split into train and test, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]).astype(np.int64), np.sort(order[:n_test]).astype(np.int64)
