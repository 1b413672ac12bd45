"""The batch-size finder (``Tuner.scale_batch_size``) and other changes of a plan setting after a loader was built:
the next loader follows them, reading the same version of the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch.tuner import Tuner
from loading.support import RecordingModule, assert_exactly_once, epoch_ids, make_dm, quiet_trainer, write_labelled

N_ROWS = 1000


class SizeRecorder(RecordingModule):
    """Records the size of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.sizes.append(len(batch[1]))
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize("mode", ["power", "binsearch"])
def test_every_trial_of_the_batch_size_finder_gets_its_batch_size(tmp_path: Path, mode: str) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    write_labelled(url, "rows", N_ROWS)
    model = SizeRecorder()
    dm = make_dm(url, "rows", tmp_path / "cache", batch_size=2, shuffle=True)
    trainer = quiet_trainer(max_epochs=1, default_root_dir=str(tmp_path))
    # margin=0: binsearch would otherwise report 5% below the last size that succeeded, which no trial delivered.
    found = Tuner(trainer).scale_batch_size(model, datamodule=dm, mode=mode, steps_per_trial=3, init_val=2,
                                            max_trials=4, margin=0.0)
    trials = [model.sizes[i : i + 3] for i in range(0, len(model.sizes), 3)]
    assert all(len(set(trial)) == 1 for trial in trials), trials  # each trial's batches have the trial's size
    assert [t[0] for t in trials][:4] == [2, 4, 8, 16]
    assert found == dm.batch_size and found in model.sizes  # the reported size is one the loader delivered
    model.sizes.clear()
    quiet_trainer(max_epochs=1).fit(model, datamodule=dm)
    assert set(model.sizes[:-1]) == {found} and len(model.sizes) == -(-N_ROWS // found)


def test_a_changed_plan_setting_takes_effect_in_the_next_loader(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    write_labelled(url, "rows", N_ROWS)
    dm = make_dm(url, "rows", tmp_path / "cache", batch_size=50, shuffle=False)
    first = dm.train_dataloader()
    assert len(first) == 20
    dm.batch_size, dm.block_size, dm.shuffle = 100, 128, True
    second = dm.train_dataloader()
    assert len(second) == 10 and second.block_dataset.plan.block_size == 128 and second.block_dataset.plan.shuffle
    ids = epoch_ids(second)
    assert_exactly_once(ids, N_ROWS)
    assert not np.array_equal(ids, np.arange(N_ROWS))
    assert dm.train_dataloader().block_dataset is second.block_dataset  # nothing changed: the same plan
    assert second.block_dataset.reader.info.version == first.block_dataset.reader.info.version
