"""scikit-learn's bundled 8x8 handwritten digits, as a small offline image data set."""

from __future__ import annotations

import numpy as np

from lightning_dm8.importers.splits import split_train_test


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load the 1,797 digits shipped inside scikit-learn and split them.

    The digits need no download, which makes them the data set for examples and
    tests that must run offline. Pixels (0..16 in scikit-learn) are scaled to
    uint8 0..255 so they are stored like any other grey-scale image.

    Args:
        test_fraction: Share of samples in the test part.
        seed: Seed of the split, see :func:`~lightning_dm8.importers.splits.split_train_test`.

    Returns:
        ``{"train": (images, labels), "test": (images, labels)}``: images uint8
        ``(N, 8, 8)``, labels int64 ``(N,)``.

    Raises:
        ImportError: If scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("the digits data set comes with scikit-learn: pip install scikit-learn") from exc
    bunch = load_digits()
    images = np.rint(bunch.images * 255.0 / 16.0).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    train, test = split_train_test(len(labels), test_fraction, seed)
    return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}
