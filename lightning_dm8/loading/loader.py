"""DM8DataLoader: the loader of one rank — an iterable of batches that knows its epoch, order mode and position.

It is not a ``torch.utils.data.DataLoader`` itself but drives one (the worker processes, pinning): the rows are
sharded by the epoch plan, not by a sampler, so nothing should replace its sampler (Lightning and Fabric do that to
DataLoaders under DDP), and its exact ``len()`` is the number of batches each rank delivers. Lightning reads what it
needs from it: ``len()``, ``state_dict``/``load_state_dict`` (stored with the fit loop, so a run restored mid-epoch
delivers exactly the rest of it) and, when predicting, ``batch_sampler.seen_batch_indices`` (the row ids of each
batch, for prediction writers).

The epoch comes from ``epoch_fn`` (the Trainer's), else from :meth:`DM8DataLoader.set_epoch`, else the loader counts
the epochs it was iterated. Each epoch's ticket (epoch, order mode, batches to skip) goes to the workers through
shared memory, so persistent workers (``persistent_workers=True``) deliver each epoch's plan like fresh ones.
"""

from __future__ import annotations

import ctypes
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from lightning.pytorch.overrides.distributed import _IndexBatchSamplerWrapper
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lightning_dm8.loading.dataset import (
    BatchEnvelope,
    BlockDataset,
    EpochTicket,
    round_robin_share,
)
from lightning_dm8.loading.plan import Mode, padding_rows, worker_batch_counts
from lightning_dm8.loading.ranks import Ranks
from lightning_dm8.loading.source import LoadStats

_STATE_VERSION = 2
_POLL_SECONDS = 0.25


def _dead_workers(workers: list[Any], wait: float = 1.0) -> str:
    """Pids of the worker processes that have exited (waiting briefly: the pipe may break before the exit shows)."""
    deadline = time.monotonic() + wait
    while True:
        dead = [str(w.pid) for w in workers if not w.is_alive()]
        if dead or time.monotonic() > deadline:
            return ", ".join(dead)
        time.sleep(0.02)


def _unwrap(item: Any) -> Any:
    return item


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None with other C libraries (musl, macOS, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return None


_MALLOC_TRIM = _find_malloc_trim()


def _release_free_heap() -> None:
    """Give the free memory inside this process's malloc heaps back to the OS (before the workers are forked).

    glibc raises its mmap threshold at the first free of a large block, so later large temporaries (a training
    step's float copy of a batch, say) come from the heap and leave holes there once freed: tens of MB, resident,
    more the longer the process has run. Forked workers inherit those pages and each one's resident anonymous
    memory counts them; trimming first makes a worker start from what the main process really uses.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class _RowIdBatches:
    """What Lightning's index wrapper (how its predict loop finds each batch's indices) wraps: nothing to iterate;
    the loader fills the wrapper's ``seen_batch_indices`` itself."""

    def __iter__(self) -> Iterator[list[int]]:
        return iter(())

    def __len__(self) -> int:
        return 0


class DM8DataLoader:
    """Iterates a :class:`BlockDataset`; one ``iter()`` is one epoch.

    Args:
        dataset: the rank's dataset.
        num_workers: worker processes (0: load in this process, with prefetch threads).
        pin_memory: pin batches (faster copies to a GPU).
        persistent_workers: keep the worker processes (their connections, cache handles and prefetch threads) from
            one epoch to the next; each epoch's plan still reaches them.
        epoch_fn: returns the current epoch (the Trainer's); without it, :meth:`set_epoch` or the loader's own count.
        cache_complete: whether the cache held the whole table on every rank when the run started (decides the first
            epoch's mode).
        track_row_ids: keep the row ids of yielded batches, for :meth:`pop_row_ids` and ``batch_sampler``.
        on_epoch_end: called with the epoch's :class:`LoadStats` when an epoch has been fully delivered.
        ranks: this process's rank among the ranks (and whether they can talk): ranks sharing a cache fill what is
            missing from it together before a warm epoch.
        progress: show a progress bar (global rank 0) while a cold epoch fills the cache.
    """

    def __init__(
        self, dataset: BlockDataset, *, num_workers: int = 0, pin_memory: bool = False,
        persistent_workers: bool = False, epoch_fn: Callable[[], int] | None = None, cache_complete: bool = False,
        track_row_ids: bool = False, on_epoch_end: Callable[[LoadStats], None] | None = None,
        multiprocessing_context: Any = None, ranks: Ranks | None = None, progress: bool = False,
    ) -> None:
        self.block_dataset = dataset
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers and num_workers > 0
        self._torch_loader = DataLoader(
            dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, collate_fn=_unwrap,
            persistent_workers=self.persistent_workers,
            multiprocessing_context=multiprocessing_context if num_workers else None,
        )
        self.epoch_fn = epoch_fn
        self.cache_complete = cache_complete
        self.track_row_ids = track_row_ids
        self.on_epoch_end = on_epoch_end
        self.ranks = ranks or Ranks()
        self.progress = progress
        self.stats = LoadStats()
        self.window = LoadStats()
        self._batch_indices = _IndexBatchSamplerWrapper(_RowIdBatches())
        self._row_ids: deque[np.ndarray] = deque()
        self._epoch = 0
        self._requested_epoch: int | None = None
        self._iterated = False
        self._first_epoch: int | None = None
        self._delivered = 0
        self._worker_delivered: list[int] = []
        self._mode: Mode = "cold"
        self._resume: dict[str, Any] | None = None

    def __len__(self) -> int:
        """Batches per epoch: the same on every rank."""
        return len(self.block_dataset)

    @property
    def mode(self) -> Mode:
        """The order mode of the current (or last) epoch: ``"cold"`` (block order, fills the cache) or ``"warm"``."""
        return self._mode

    @property
    def batch_sampler(self) -> Any:
        """With ``track_row_ids``: Lightning's index wrapper, its ``seen_batch_indices`` the row ids of each batch
        delivered this epoch (what Lightning hands prediction writers as ``batch_indices``); else None."""
        return self._batch_indices if self.track_row_ids else None

    def set_epoch(self, epoch: int) -> None:
        """Deliver epoch ``epoch`` from the next ``iter()`` on (as ``DistributedSampler.set_epoch``): for loops
        without a Trainer. A Trainer's epoch (``epoch_fn``) takes precedence."""
        self._requested_epoch = int(epoch)

    def take_window(self) -> LoadStats:
        """The statistics of the batches delivered since the last call (per-step metrics), resetting them."""
        window, self.window = self.window, LoadStats()
        return window

    def cache_filled(self) -> float:
        """The share (0..1) of the table's blocks that are in the cache now."""
        return self.block_dataset.cached_fraction()

    def _epoch_number(self) -> int:
        if self.epoch_fn is not None:
            return self.epoch_fn()
        if self._requested_epoch is not None:
            return self._requested_epoch
        return self._epoch + 1 if self._iterated else self._epoch

    def _next_ticket(self) -> EpochTicket:
        epoch = self._epoch_number()
        self._iterated = True
        resume, self._resume = self._resume, None
        if resume is not None and resume["epoch"] == epoch:
            return EpochTicket(epoch, resume["mode"], resume["skip"])
        if self._first_epoch is None:
            self._first_epoch = epoch
        warm = self.block_dataset.cache is not None and (
            self.cache_complete or (epoch > self._first_epoch and self._cache_ready())
        )
        return EpochTicket(epoch, "warm" if warm else "cold")

    def _cache_ready(self) -> bool:
        """Whether a later epoch may read the cache at random (warm), the first epoch having filled it.

        One rank asks the cache: one that could not be filled (``cache_on_full="skip"`` on a full disk) would make a
        warm epoch query its missing blocks again for every batch that touches them, so such an epoch stays cold
        (each block read once). Connected ranks fill what their caches miss first (:meth:`_fill_together`): on
        several nodes each node's cache holds only what its own ranks read. Ranks that cannot talk keep the rule
        that the first epoch filled the cache (they all decide alike).
        """
        if self.ranks.world_size == 1:
            return self.block_dataset.cache_is_complete()
        if not self.ranks.connected:
            return True
        return self._fill_together()

    def _fill_together(self) -> bool:
        """Complete every rank's cache before a warm epoch: the ranks sharing a cache (same host and path) split
        its missing blocks by block number, so each node reads each missing block from the database once. True
        when every rank's share is in its cache (the same answer on every rank)."""
        dataset = self.block_dataset
        assert dataset.cache is not None
        here = (socket.gethostname(), str(dataset.cache.path))
        peers = self.ranks.all_gather(here) or [here]  # also a barrier: the last epoch's blocks are all committed
        group = [r for r, key in enumerate(peers) if tuple(key) == here]
        share, size = group.index(self.ranks.rank), len(group)
        mine = [b for b in dataset.missing_blocks() if b % size == share]
        failure: Exception | None = None
        if mine:
            bar = self._bar(dataset, len(mine))
            try:
                self._count(dataset.fill(mine, on_block=bar.update if bar is not None else None))
            except Exception as exc:  # the other ranks must still hear this rank's answer before it raises
                failure = exc
            finally:
                if bar is not None:
                    bar.close()
        agreed = self.ranks.all_true(failure is None and dataset.cache.disabled_reason is None)
        if failure is not None:
            raise failure
        return agreed

    def _bar(self, dataset: BlockDataset, total: int, initial: int = 0) -> tqdm | None:
        """A progress bar of blocks filled into the cache, on global rank 0 when ``progress`` is on (else None)."""
        if not self.progress or self.ranks.rank != 0:
            return None
        return tqdm(total=total, initial=initial, desc=f"filling the cache of {dataset.reader.info.name!r}",
                    unit="blocks")

    def _count(self, values: dict[str, float]) -> None:
        self.stats.add(values)
        self.window.add(values)

    def __iter__(self) -> Iterator[Any]:
        started = time.perf_counter()
        self.stats = LoadStats(padding_rows=padding_rows(self.block_dataset.plan))
        self.window = LoadStats()
        ticket = self._next_ticket()
        self.block_dataset.ticket = ticket
        self._epoch, self._mode, self._delivered = ticket.epoch, ticket.mode, ticket.skip_batches
        self._worker_delivered = list(ticket.skip) or [0] * self.block_dataset.plan.num_workers
        self._row_ids.clear()
        self._batch_indices.seen_batch_indices = []
        total = len(self)
        cache = self.block_dataset.cache
        n_blocks = cache.n_blocks if cache is not None else 0
        bar = None
        if ticket.mode == "cold" and cache is not None:
            bar = self._bar(self.block_dataset, n_blocks, int(self.cache_filled() * n_blocks))
        finished = False
        last = asked = polled = started
        try:
            for envelope in self._envelopes(total):
                now = time.perf_counter()
                self._deliver(envelope, seconds=now - last, waited=now - asked)
                last = now
                if bar is not None and (now - polled > _POLL_SECONDS or self._delivered >= total):
                    bar.update(int(self.cache_filled() * n_blocks) - bar.n)
                    bar.refresh()
                    polled = now
                if self._delivered >= total and not finished:
                    # Lightning stops after len() batches without exhausting the iterator: finish the epoch here.
                    finished = True
                    self._finish_epoch()
                yield envelope.batch
                asked = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
        if not finished:
            self._finish_epoch()

    def _deliver(self, envelope: BatchEnvelope, seconds: float, waited: float) -> None:
        """Account for a batch about to be handed over: its statistics, position and row ids."""
        self._count({**envelope.stats, "rows": len(envelope.row_ids), "seconds": seconds, "wait_seconds": waited})
        self._delivered += 1
        self._worker_delivered[envelope.worker] += 1
        if self.track_row_ids:
            self._row_ids.append(envelope.row_ids)
            self._batch_indices.seen_batch_indices.append(envelope.row_ids.tolist())

    def _workers_running(self) -> bool:
        return getattr(self._torch_loader, "_iterator", None) is not None

    def _envelopes(self, total: int) -> Iterator[BatchEnvelope]:
        """The workers' batches; a worker that died (killed, out of memory) ends the epoch with a clear error.

        torch reports a dead worker as a RuntimeError, or (when the pipe breaks first) as a bare connection error,
        which is turned into the same kind of RuntimeError here (errors raised by the dataset pass unchanged). After
        any failure persistent workers are shut down: the next epoch starts new ones.
        """
        if self.num_workers and not self._workers_running():
            # The workers open their own connections and cache handle: this process lets go of its own first, so
            # that nothing of it is inherited (a worker closing an inherited LMDB environment would release this
            # thread's reader slot).
            self.block_dataset.close()
            _release_free_heap()
        iterator = iter(self._torch_loader)
        while True:
            try:
                envelope = next(iterator)
            except StopIteration:
                return
            except (ConnectionResetError, BrokenPipeError, EOFError) as exc:
                if self.num_workers == 0:
                    raise
                dead = _dead_workers(getattr(iterator, "_workers", []))
                self.close()
                raise RuntimeError(
                    f"DataLoader worker (pid {dead or 'unknown'}) exited unexpectedly while reading "
                    f"{self.block_dataset.reader.info.name!r}: {self._delivered} of {total} batches were delivered "
                    f"({type(exc).__name__}: {exc}); the epoch is incomplete"
                ) from exc
            except Exception:
                self.close()
                raise
            yield envelope

    def _finish_epoch(self) -> None:
        if self.on_epoch_end is not None:
            self.on_epoch_end(self.stats)

    def close(self) -> None:
        """Stop the worker processes if they are running (persistent workers stay up until this is called, or
        until the loader is garbage-collected)."""
        iterator = getattr(self._torch_loader, "_iterator", None)
        if iterator is not None:
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self._torch_loader._iterator = None

    def pop_row_ids(self) -> np.ndarray:
        """Row ids of the oldest yielded batch not popped yet (first in, first out)."""
        if not self._row_ids:
            raise RuntimeError("no batch row ids to pop: create the loader with track_row_ids=True and iterate it")
        return self._row_ids.popleft()

    def state_dict(self) -> dict[str, Any]:
        """The position in the epoch plan: small, and enough to resume exactly.

        Batches are counted per worker: after a resume the DataLoader's turns restart at worker 0, so the total
        alone would not say which batches a second resume in the same epoch has to skip.
        """
        plan = self.block_dataset.plan
        return {
            "version": _STATE_VERSION, "epoch": self._epoch, "mode": self._mode, "delivered": self._delivered,
            "worker_delivered": list(self._worker_delivered),
            "seed": plan.seed, "world_size": plan.world_size, "num_workers": plan.num_workers,
            "batch_size": plan.batch_size, "block_size": plan.block_size, "n_rows": plan.n_rows,
            "fingerprint": self.block_dataset.reader.info.fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state``: the next ``iter()`` delivers the rest of that epoch (or the next epoch if done)."""
        plan = self.block_dataset.plan
        expected = {"seed": plan.seed, "world_size": plan.world_size, "num_workers": plan.num_workers,
                    "batch_size": plan.batch_size, "block_size": plan.block_size, "n_rows": plan.n_rows}
        changed = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
        if changed:
            details = ", ".join(f"{k}: saved {old} now {new}" for k, (old, new) in changed.items())
            raise ValueError(
                f"cannot resume mid-epoch: the data loading setup changed since the checkpoint ({details}); resume "
                f"with the same settings, or start a new epoch"
            )
        self._iterated = False
        if state["delivered"] >= len(self):
            self._epoch = state["epoch"] + 1
            self._resume = None
            return
        self._epoch = state["epoch"]
        self._first_epoch = state["epoch"]
        skip = state.get("worker_delivered") or round_robin_share(worker_batch_counts(plan), state["delivered"])
        self._resume = {"epoch": state["epoch"], "mode": state["mode"], "skip": tuple(skip)}
