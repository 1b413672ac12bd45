"""Two DDP ranks in real processes (gloo on CPU): every row exactly once per epoch across ranks, plus exactly the
documented padding, and equal batch counts on both ranks.

Most cases use ``ddp_fork``: the ranks are forked from the test process, which has torch and Lightning imported
already, so a case takes seconds. One ``ddp_spawn`` case covers fresh interpreters that unpickle the DataModule.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from lightning_dm8.loading.plan import PlanConfig, batches_per_rank, padding_rows
from loading.support import (
    RecordingModule,
    make_dm,
    quiet_trainer,
    read_rank_files,
    write_labelled,
)

pytestmark = pytest.mark.slow

N_ROWS = 1001  # odd: the two ranks' shares need one row of padding
BATCH = 32
EPOCHS = 2


def fit_two_ranks(
    url: str, table: str, tmp_path: Path, num_workers: int, strategy: str = "ddp_fork"
) -> dict[int, dict[str, np.ndarray]]:
    out = tmp_path / "seen"
    out.mkdir()
    dm = make_dm(url, table, tmp_path / "cache", batch_size=BATCH, num_workers=num_workers, shuffle=True, seed=1)
    trainer = quiet_trainer(devices=2, strategy=strategy, max_epochs=EPOCHS)
    trainer.fit(RecordingModule(str(out)), datamodule=dm)
    return read_rank_files(out)


def check_ranks(seen: dict[int, dict[str, np.ndarray]]) -> None:
    plan = PlanConfig(n_rows=N_ROWS, block_size=64, batch_size=BATCH, world_size=2)
    per_epoch = batches_per_rank(plan)
    assert sorted(seen) == [0, 1]
    assert [len(seen[r]["batches"]) for r in (0, 1)] == [EPOCHS * per_epoch] * 2
    batches = {r: np.split(seen[r]["ids"], np.cumsum(seen[r]["batches"])[:-1]) for r in (0, 1)}
    for epoch in range(EPOCHS):
        rows = [np.concatenate(batches[r][epoch * per_epoch : (epoch + 1) * per_epoch]) for r in (0, 1)]
        assert len(rows[0]) == len(rows[1]) == (N_ROWS + padding_rows(plan)) // 2
        counts = np.bincount(np.concatenate(rows), minlength=N_ROWS)
        assert len(counts) == N_ROWS and counts.min() == 1
        assert int((counts - 1).sum()) == padding_rows(plan) == 1


@pytest.mark.parametrize("strategy, num_workers", [("ddp_fork", 0), ("ddp_fork", 1), ("ddp_spawn", 0)])
def test_two_ranks_on_sqlite(tmp_path: Path, strategy: str, num_workers: int) -> None:
    url = f"sqlite:///{tmp_path / 'ddp.db'}"
    write_labelled(url, "ddp_rows", N_ROWS)
    started = time.perf_counter()
    check_ranks(fit_two_ranks(url, "ddp_rows", tmp_path, num_workers, strategy))
    assert time.perf_counter() - started < 120


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_ranks_on_a_server(db_url: str, table_name: str, tmp_path: Path) -> None:
    write_labelled(db_url, table_name, N_ROWS)
    check_ranks(fit_two_ranks(db_url, table_name, tmp_path, 0))
