"""scikit-learn's digits as uint8 images with a deterministic split."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from lightning_dm8.importers import load_digits_split, split_train_test


def test_digits_are_uint8_images_scaled_from_0_16() -> None:
    raw = pytest.importorskip("sklearn.datasets").load_digits()
    parts = load_digits_split(test_fraction=0.25, seed=3)
    train_idx, test_idx = split_train_test(len(raw.target), 0.25, 3)
    for (images, labels), idx in ((parts["train"], train_idx), (parts["test"], test_idx)):
        assert images.dtype == np.uint8
        assert images.shape == (len(idx), 8, 8)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, np.rint(raw.images[idx] * 255 / 16).astype(np.uint8))
        np.testing.assert_array_equal(labels, raw.target[idx])
    assert len(parts["train"][1]) + len(parts["test"][1]) == 1797
    assert len(parts["test"][1]) == round(1797 * 0.25)
    assert parts["train"][0].max() == 255
    assert parts["train"][0].min() == 0


def test_digits_split_is_deterministic() -> None:
    pytest.importorskip("sklearn.datasets")
    first = load_digits_split(seed=5)
    again = load_digits_split(seed=5)
    np.testing.assert_array_equal(first["test"][0], again["test"][0])
    np.testing.assert_array_equal(first["test"][1], again["test"][1])


def test_digits_say_how_to_install_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits_split()
