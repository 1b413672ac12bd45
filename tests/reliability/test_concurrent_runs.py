"""Fault 8: two training runs on one node at the same time, sharing one cache_dir and one database.

Each run (a forked child process, a Lightning ``Trainer.fit`` of two epochs over a DM8DataModule with the cache on)
records a (row id, CRC of the feature bytes) pair for every row it trains on; the parent checks every pair against
the source and that each epoch of each run saw every row exactly once.
"""

from __future__ import annotations

import multiprocessing
import zlib

import numpy as np
import pytest
import torch
from ldm8_backends import server_url
from lightning.pytorch import LightningModule, Trainer

from reliability.support import assert_exactly_once, fork, make_dm, write_labelled

N_ROWS, EPOCHS = 3000, 2


def crcs(features: np.ndarray) -> np.ndarray:
    return np.array([zlib.crc32(row.tobytes()) for row in np.ascontiguousarray(features)], dtype=np.int64)


class Recorder(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.rows: list[tuple[int, np.ndarray, np.ndarray]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.rows.append((self.current_epoch, y.numpy().copy(), crcs(x.numpy())))
        return self.layer(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _train(url: str, table: str, cache_dir: str, out: str, barrier, seed: int, num_workers: int) -> None:
    torch.set_num_threads(1)
    dm = make_dm(url, table, cache_dir, batch_size=50, block_size=100, seed=seed, num_workers=num_workers)
    model = Recorder()
    trainer = Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    barrier.wait(120)  # both runs start their epochs together
    trainer.fit(model, datamodule=dm)
    np.savez(out, epoch=np.concatenate([np.full(len(ids), e) for e, ids, _ in model.rows]),
             ids=np.concatenate([ids for _, ids, _ in model.rows]),
             crc=np.concatenate([c for _, _, c in model.rows]),
             queries=np.array([dm.epoch_stats["train"].queries]))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_runs_sharing_cache_dir_and_database_both_get_correct_data(backend, table_name, tmp_path) -> None:
    url = server_url(backend, tmp_path)
    features = write_labelled(url, table_name, N_ROWS)
    expected = crcs(features)
    cache_dir = str(tmp_path / "shared-cache")
    barrier = multiprocessing.get_context("fork").Barrier(2)
    outs = [tmp_path / f"run{i}.npz" for i in range(2)]
    runs = [fork(_train, url, table_name, cache_dir, str(outs[i]), barrier, 10 + i, i, daemon=False)
            for i in range(2)]
    try:
        for run in runs:
            run.join(180)
    finally:
        for run in runs:
            if run.is_alive():
                run.kill()
    assert [r.exitcode for r in runs] == [0, 0], "a concurrent run failed (see its output above)"

    for i, out in enumerate(outs):
        with np.load(out) as data:
            epoch, ids, crc = data["epoch"], data["ids"], data["crc"]
            last_queries = int(data["queries"][0])
        np.testing.assert_array_equal(crc, expected[ids],
                                      err_msg=f"run {i} trained on rows that differ from the source")
        for e in range(EPOCHS):
            assert_exactly_once(ids[epoch == e], N_ROWS)
        print(f"\n{backend} run {i}: {len(ids)} rows over {EPOCHS} epochs, all checksums equal the source; "
              f"queries in its last epoch: {last_queries}")
