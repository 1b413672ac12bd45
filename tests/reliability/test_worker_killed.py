"""Fault 2: a DataLoader worker is SIGKILLed mid-epoch. The run must fail loudly, never end a short epoch."""

from __future__ import annotations

import gc
import os
import signal

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from reliability.support import check_batch, children, make_dm, wait_for, write_labelled

N_ROWS = 4000


class KillingModule(LightningModule):
    """Checks every batch against the source and SIGKILLs one DataLoader worker at step ``kill_at``."""

    def __init__(self, features: np.ndarray, kill_at: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.features = features
        self.kill_at = kill_at
        self.seen: list[np.ndarray] = []
        self.killed: int | None = None
        self.epoch_ends = 0
        self.children_before: set[int] = set()

    def on_train_start(self) -> None:
        # Other tests in the same session may have left children of this process (e.g. a server they started).
        self.children_before = set(children())

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append(check_batch(x, y, self.features))
        if batch_idx == self.kill_at:
            workers = sorted(set(children()) - self.children_before)
            assert len(workers) == 2, f"expected the 2 DataLoader workers as children, found {workers}"
            self.killed = workers[0]
            os.kill(self.killed, signal.SIGKILL)
        return self.layer(x).pow(2).mean()

    def on_train_epoch_end(self) -> None:
        self.epoch_ends += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_sigkilled_worker_fails_the_run_loudly(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    features = write_labelled(url, "data", N_ROWS)
    dm = make_dm(url, "data", None, batch_size=20, block_size=50, num_workers=2, shuffle=True)
    model = KillingModule(features, kill_at=5)
    trainer = Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    # torch says either, depending on whether its SIGCHLD handler or its queue timeout notices first
    loud = r"DataLoader worker \(pid(\(s\))? \d+\) (exited unexpectedly|is killed by signal: Killed)"
    with pytest.raises(RuntimeError, match=loud) as raised:
        trainer.fit(model, datamodule=dm)
    delivered = np.concatenate(model.seen)
    print(f"\nkilled worker {model.killed} at step 5; {len(delivered)} of {N_ROWS} rows delivered, then: "
          f"{raised.value}")
    assert model.killed is not None and str(model.killed) in str(raised.value)
    assert len(delivered) < N_ROWS and len(np.unique(delivered)) == len(delivered)
    assert model.epoch_ends == 0, "the epoch was reported as finished although a worker died"
    assert "train" not in dm.epoch_stats, "the loader recorded a complete epoch"
    del raised
    gc.collect()
    wait_for(lambda: not set(children()) - model.children_before, 10, "the surviving worker to exit")
