"""DM8DataModule without a Lightning Trainer: Fabric DDP and plain ``torch.distributed`` DDP in two real processes
each (the examples in examples/without_trainer, gloo on CPU), explicit ``rank``/``world_size``, and ``set_epoch``.

Every row is delivered exactly once per epoch across the ranks (plus the documented padding), each epoch in its own
order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_dm8 import InvalidInputError
from lightning_dm8.loading.ranks import Ranks
from loading.support import RecordingModule, assert_exactly_once, epoch_ids, make_dm, quiet_trainer, write_labelled

REPO = Path(__file__).resolve().parents[2]
N_ROWS = 1001  # odd: two ranks need one row of padding
EPOCHS = 2


def check_two_ranks(seen: Path) -> None:
    orders = []
    for epoch in range(EPOCHS):
        ranks = [np.load(seen / f"rank{r}-epoch{epoch}.npy") for r in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == (N_ROWS + 1) // 2
        counts = np.bincount(np.concatenate(ranks), minlength=N_ROWS)
        assert len(counts) == N_ROWS and counts.min() == 1 and int((counts - 1).sum()) == 1
        orders.append(ranks[0])
    assert not np.array_equal(orders[0], orders[1])


def run_example(command: list[str], url: str, tmp_path: Path) -> Path:
    seen = tmp_path / "seen"
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT")}
    result = subprocess.run(
        [*command, "--url", url, "--table", "rows", "--classes", str(N_ROWS), "--epochs", str(EPOCHS), "--seen",
         str(seen), "--cache-dir", str(tmp_path / "cache")],
        env={**env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "epoch 1:" in result.stdout and "0 queries on rank 0" in result.stdout  # the second epoch is warm
    return seen


@pytest.mark.slow
def test_fabric_ddp_two_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fabric.db'}"
    write_labelled(url, "rows", N_ROWS)
    check_two_ranks(run_example([sys.executable, str(REPO / "examples/without_trainer/fabric_ddp.py")], url,
                                tmp_path))


@pytest.mark.slow
def test_plain_torch_distributed_two_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'torch.db'}"
    write_labelled(url, "rows", N_ROWS)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    check_two_ranks(run_example([*torchrun, str(REPO / "examples/without_trainer/torch_ddp.py")], url, tmp_path))


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "nocache"])
def test_explicit_rank_and_world_size(tmp_path: Path, cached: bool) -> None:
    """Processes that share no process group pass their rank themselves: together they deliver every row once."""
    url = f"sqlite:///{tmp_path / 'ranks.db'}"
    write_labelled(url, "rows", N_ROWS)
    cache = tmp_path / "cache" if cached else None
    loaders = [make_dm(url, "rows", cache, rank=r, world_size=2, shuffle=True, seed=2).train_dataloader()
               for r in (0, 1)]
    modes = []
    for _ in range(EPOCHS):
        ids = np.concatenate([epoch_ids(loader) for loader in loaders])
        assert np.bincount(ids, minlength=N_ROWS).min() == 1 and len(ids) == N_ROWS + 1
        modes.append([loader.mode for loader in loaders])
    assert modes == ([["cold"] * 2, ["warm"] * 2] if cached else [["cold"] * 2] * 2)


def test_rank_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ranks.db'}"
    write_labelled(url, "rows", 100)
    with pytest.raises(InvalidInputError, match="give rank and world_size together"):
        make_dm(url, "rows", rank=1)
    with pytest.raises(InvalidInputError, match=r"rank must be in 0..world_size-1.*rank=2, world_size=2"):
        make_dm(url, "rows", rank=2, world_size=2)
    with pytest.raises(InvalidInputError, match="the Trainer says rank 0 of 1"):
        quiet_trainer(max_epochs=1).fit(RecordingModule(), datamodule=make_dm(url, "rows", rank=1, world_size=2))
    assert Ranks.detect((1, 2)) == Ranks(1, 2, connected=False)  # no process group in this test process
    assert Ranks.detect(None, 0, 1) == Ranks(0, 1)


def test_set_epoch_decides_the_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'epochs.db'}"
    write_labelled(url, "rows", 300)
    loader = make_dm(url, "rows", shuffle=True, seed=1).train_dataloader()
    first, second = epoch_ids(loader), epoch_ids(loader)  # without set_epoch the loader counts epochs itself
    assert_exactly_once(second, 300)
    assert not np.array_equal(first, second)
    loader.set_epoch(0)
    np.testing.assert_array_equal(epoch_ids(loader), first)
    np.testing.assert_array_equal(epoch_ids(loader), first)  # as DistributedSampler: until it is set again
    loader.set_epoch(1)
    np.testing.assert_array_equal(epoch_ids(loader), second)
    other = make_dm(url, "rows", shuffle=True, seed=1).train_dataloader()
    other.set_epoch(1)
    np.testing.assert_array_equal(epoch_ids(other), second)
