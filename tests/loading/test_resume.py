"""Mid-epoch resume at the loader level: the state of a partly iterated epoch makes a fresh loader deliver exactly
the rest of it, in cold and warm order modes, in the main process and with workers, also when resumed twice."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lightning_dm8.loading.dataset import round_robin_share
from lightning_dm8.loading.plan import worker_batch_counts
from loading.support import assert_exactly_once, epoch_ids, make_dm, write_labelled

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")

N_ROWS = 1003
BATCH = 32


def fresh_loader(url: str, table: str, cache_dir: Path, num_workers: int, **kwargs):
    dm = make_dm(url, table, cache_dir, num_workers=num_workers, shuffle=True, seed=9, batch_size=BATCH, **kwargs)
    dm.setup("fit")
    return dm, dm.train_dataloader()


def take(loader, k: int) -> tuple[list[np.ndarray], dict]:
    """The labels of the first ``k`` batches of an epoch and the loader state right after the k-th batch."""
    it = iter(loader)
    seen = [y.numpy() for _, y in itertools.islice(it, k)]
    state = loader.state_dict()
    del it
    return seen, state


@pytest.fixture
def sqlite_table(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    write_labelled(url, "resume_rows", N_ROWS)
    return url, "resume_rows"


@pytest.mark.parametrize("mode", ["cold", "warm"])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_delivers_exactly_the_rest_of_the_epoch(sqlite_table, tmp_path, num_workers, mode) -> None:
    url, table = sqlite_table
    cache = tmp_path / "cache"
    if mode == "warm":
        _, filler = fresh_loader(url, table, cache, 0)
        epoch_ids(filler)
    _, loader = fresh_loader(url, table, cache, num_workers)
    head, state = take(loader, 7)
    assert (state["delivered"], state["mode"], state["epoch"]) == (7, mode, 0)

    dm, resumed = fresh_loader(url, table, cache, num_workers)
    resumed.load_state_dict(state)
    rest = epoch_ids(resumed)
    assert len(rest) == N_ROWS - 7 * BATCH
    assert_exactly_once(np.concatenate(head + [rest]), N_ROWS)
    # The epoch after the resumed one is a complete new epoch.
    assert_exactly_once(epoch_ids(resumed), N_ROWS)
    assert dm.epoch_stats["train"].rows_from_cache >= N_ROWS * (mode == "warm")


@pytest.mark.parametrize("num_workers", [0, 3])
def test_resuming_twice_in_one_epoch(sqlite_table, tmp_path, num_workers) -> None:
    url, table = sqlite_table
    _, loader = fresh_loader(url, table, None, num_workers)
    head, state = take(loader, 4)
    _, again = fresh_loader(url, table, None, num_workers)
    again.load_state_dict(state)
    middle, state = take(again, 5)
    assert state["delivered"] == 9
    _, last = fresh_loader(url, table, None, num_workers)
    last.load_state_dict(state)
    assert_exactly_once(np.concatenate(head + middle + [epoch_ids(last)]), N_ROWS)


def test_state_after_a_finished_epoch_starts_the_next(sqlite_table) -> None:
    url, table = sqlite_table
    _, loader = fresh_loader(url, table, None, 0)
    first = epoch_ids(loader)
    state = loader.state_dict()
    assert state["delivered"] == len(loader)
    _, resumed = fresh_loader(url, table, None, 0)
    resumed.load_state_dict(state)
    second = epoch_ids(resumed)
    assert_exactly_once(second, N_ROWS)
    assert resumed.state_dict()["epoch"] == 1
    assert not np.array_equal(first, second)


def test_resume_with_other_workers_is_refused_with_the_reason(sqlite_table) -> None:
    url, table = sqlite_table
    _, loader = fresh_loader(url, table, None, 0)
    _, state = take(loader, 3)
    _, other = fresh_loader(url, table, None, 2)
    with pytest.raises(ValueError, match=r"num_workers: saved 1 now 2.*same settings"):
        other.load_state_dict(state)


class _TaggedByWorker(IterableDataset):
    """Worker ``w`` yields its id ``counts[w]`` times: shows the order in which the DataLoader takes batches."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts

    def __iter__(self):
        worker = get_worker_info().id
        yield from [worker] * self.counts[worker]


def test_round_robin_share_matches_the_torch_dataloader() -> None:
    counts = [3, 3, 4]
    order = list(DataLoader(_TaggedByWorker(counts), batch_size=None, num_workers=3))
    assert len(order) == 10
    for k in range(len(order) + 1):
        assert round_robin_share(counts, k) == [order[:k].count(w) for w in range(3)]


def test_resume_from_a_total_count_only(sqlite_table) -> None:
    """A state without per-worker counts (the first resume of an epoch) is reconstructed from the DataLoader's
    round-robin turns."""
    url, table = sqlite_table
    _, loader = fresh_loader(url, table, None, 3)
    head, state = take(loader, 8)
    assert state["worker_delivered"] == round_robin_share(worker_batch_counts(loader.block_dataset.plan), 8)
    del state["worker_delivered"]
    _, resumed = fresh_loader(url, table, None, 3)
    resumed.load_state_dict(state)
    assert_exactly_once(np.concatenate(head + [epoch_ids(resumed)]), N_ROWS)
