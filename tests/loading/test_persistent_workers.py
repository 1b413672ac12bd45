"""Persistent workers (``persistent_workers=True``): the same worker processes serve every epoch, and each epoch's
plan (epoch, order mode, batches to skip after a resume) still reaches them, so they deliver exactly what fresh
workers would."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from loading.support import RecordingModule, assert_exactly_once, epoch_ids, make_dm, quiet_trainer, write_labelled

N_ROWS = 1003
EPOCHS = 3


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'persistent.db'}"
    write_labelled(url, "rows", N_ROWS)
    return url


def worker_pids(loader) -> list[int]:
    return sorted(w.pid for w in loader._torch_loader._iterator._workers)


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "nocache"])
def test_persistent_workers_deliver_each_epochs_plan(url: str, tmp_path: Path, cached: bool) -> None:
    cache = tmp_path / "cache" if cached else None
    options = {"num_workers": 2, "shuffle": True, "seed": 7}
    fresh = make_dm(url, "rows", cache and tmp_path / "fresh", **options).train_dataloader()
    expected = [epoch_ids(fresh) for _ in range(EPOCHS)]
    loader = make_dm(url, "rows", cache, persistent_workers=True, **options).train_dataloader()
    pids, modes = [], []
    for epoch in range(EPOCHS):
        ids = epoch_ids(loader)
        assert_exactly_once(ids, N_ROWS)
        np.testing.assert_array_equal(ids, expected[epoch])  # the same order as workers started for the epoch
        pids.append(worker_pids(loader))
        modes.append(loader.mode)
    assert pids[0] == pids[1] == pids[2]
    assert modes == (["cold", "warm", "warm"] if cached else ["cold"] * 3)
    loader.close()
    assert loader._torch_loader._iterator is None


def test_a_resume_reaches_persistent_workers(url: str, tmp_path: Path) -> None:
    def persistent():
        return make_dm(url, "rows", tmp_path / "cache", num_workers=2, persistent_workers=True, shuffle=True,
                       seed=3).train_dataloader()

    loader = persistent()
    epoch_ids(loader)  # the workers now run, for the next epoch too
    head = [y.numpy() for _, y in itertools.islice(iter(loader), 5)]
    state = loader.state_dict()
    resumed = persistent()
    epoch_ids(resumed)  # start its workers before the state arrives: the skip must still reach them
    resumed.load_state_dict(state)
    rest = epoch_ids(resumed)
    assert len(rest) == N_ROWS - 5 * 32
    assert_exactly_once(np.concatenate(head + [rest]), N_ROWS)


def test_a_trainer_with_persistent_workers(url: str, tmp_path: Path) -> None:
    model = RecordingModule()
    dm = make_dm(url, "rows", tmp_path / "cache", num_workers=2, persistent_workers=True, shuffle=True)
    quiet_trainer(max_epochs=2).fit(model, datamodule=dm)
    per_epoch = -(-N_ROWS // 32)
    for epoch in range(2):
        assert_exactly_once(np.concatenate(model.seen[epoch * per_epoch : (epoch + 1) * per_epoch]), N_ROWS)
    assert dm.epoch_stats["train"].queries == 0
    assert dm.loaders["train"]._torch_loader._iterator is None  # teardown stopped the workers
