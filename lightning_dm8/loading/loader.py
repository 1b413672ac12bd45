"""DM8DataLoader: a DataLoader over a BlockDataset that knows its epoch, order mode and position.

Its ``state_dict`` is what Lightning stores in a checkpoint for the training loader (Lightning saves the state
of a loader that has ``state_dict``/``load_state_dict``); restoring it makes the next iteration deliver exactly
the rest of the interrupted epoch. Workers are not persistent: each epoch's workers receive that epoch's
ticket when they start.
"""

from __future__ import annotations

import ctypes
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from lightning_dm8.loading.dataset import (
    BatchEnvelope,
    BlockDataset,
    EpochTicket,
    round_robin_share,
)
from lightning_dm8.loading.plan import Mode, padding_rows, worker_batch_counts
from lightning_dm8.loading.source import LoadStats

_STATE_VERSION = 2


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


class DM8DataLoader(DataLoader):
    """Iterates a :class:`BlockDataset`; one ``iter()`` is one epoch.

    Args:
        dataset: the rank's dataset.
        num_workers: worker processes (0: load in this process, with prefetch threads).
        epoch_fn: returns the current epoch (the Trainer's); without it the loader counts epochs itself.
        cache_complete: whether the cache held the whole table when the run started (decides the first epoch's mode).
        track_row_ids: keep the row ids of yielded batches for :meth:`pop_row_ids` (prediction writers).
        on_epoch_end: called with the epoch's :class:`LoadStats` when an epoch has been fully delivered.
    """

    def __init__(
        self, dataset: BlockDataset, *, num_workers: int = 0, pin_memory: bool = False,
        epoch_fn: Callable[[], int] | None = None, cache_complete: bool = False, track_row_ids: bool = False,
        on_epoch_end: Callable[[LoadStats], None] | None = None, multiprocessing_context: Any = None,
        **sampler_args: Any,
    ) -> None:
        # Lightning re-creates prediction loaders with a sampler to track indices (``sampler_args``); batches of an
        # iterable dataset need none, and this loader reports row ids itself (``pop_row_ids``).
        super().__init__(
            dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, collate_fn=_unwrap,
            persistent_workers=False, multiprocessing_context=multiprocessing_context if num_workers else None,
        )
        self.block_dataset = dataset
        self.epoch_fn = epoch_fn
        self.cache_complete = cache_complete
        self.track_row_ids = track_row_ids
        self.on_epoch_end = on_epoch_end
        self.stats = LoadStats()
        self._row_ids: deque[np.ndarray] = deque()
        self._epoch = 0
        self._iterated = False
        self._first_epoch: int | None = None
        self._delivered = 0
        self._worker_delivered: list[int] = []
        self._mode: Mode = "cold"
        self._resume: dict[str, Any] | None = None

    def _next_ticket(self) -> EpochTicket:
        if self.epoch_fn is not None:
            epoch = self.epoch_fn()
        else:
            epoch = self._epoch + 1 if self._iterated else self._epoch
        self._iterated = True
        if self._resume is not None and self._resume["epoch"] == epoch:
            ticket = EpochTicket(epoch, self._resume["mode"], self._resume["skip"])
        else:
            if self._first_epoch is None:
                self._first_epoch = epoch
            warm = self.block_dataset.cache is not None and (
                self.cache_complete or (epoch > self._first_epoch and self._cache_filled())
            )
            ticket = EpochTicket(epoch, "warm" if warm else "cold")
        self._resume = None
        if self._first_epoch is None:
            self._first_epoch = epoch
        return ticket

    def _cache_filled(self) -> bool:
        """Whether a later epoch may read the cache at random (warm), the first epoch having filled it.

        In one process this is asked of the cache: one that could not be filled (``cache_on_full="skip"`` on a full
        disk) would make a warm epoch query its missing blocks again for every batch that touches them, so such an
        epoch stays cold (each block read once). Several ranks must pick the same order without talking here, so
        they keep the rule that the first epoch filled it.
        """
        if self.block_dataset.cache is None or self.block_dataset.plan.world_size > 1:
            return True
        return self.block_dataset.cache_is_complete()

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # batches, not the Dataset items DataLoader types
        ticket = self._next_ticket()
        self.block_dataset.ticket = ticket
        self._epoch, self._mode, self._delivered = ticket.epoch, ticket.mode, ticket.skip_batches
        self._worker_delivered = list(ticket.skip) or [0] * self.block_dataset.plan.num_workers
        self.stats = LoadStats(padding_rows=padding_rows(self.block_dataset.plan))
        self._row_ids.clear()
        total = len(self)
        finished = False
        for envelope in self._envelopes(total):
            assert isinstance(envelope, BatchEnvelope)
            self.stats.add(envelope.stats)
            self._delivered += 1
            self._worker_delivered[envelope.worker] += 1
            if self.track_row_ids:
                self._row_ids.append(envelope.row_ids)
            if self._delivered >= total and not finished:
                # Lightning stops after len() batches without exhausting the iterator: finish the epoch here.
                finished = True
                self._finish_epoch()
            yield envelope.batch
        if not finished:
            self._finish_epoch()

    def _envelopes(self, total: int) -> Iterator[BatchEnvelope]:
        """The workers' batches; a worker that died (killed, out of memory) ends the epoch with a clear error.

        torch reports a dead worker as a RuntimeError, or (when the pipe breaks first) as a bare connection error,
        which is turned into the same kind of RuntimeError here (errors raised by the dataset pass unchanged).
        """
        if self.num_workers:
            # The workers open their own connections and cache handle: this process lets go of its own first, so
            # that nothing of it is inherited (a worker closing an inherited LMDB environment would release this
            # thread's reader slot).
            self.block_dataset.close()
            _release_free_heap()
        iterator = super().__iter__()
        while True:
            try:
                envelope = next(iterator)
            except StopIteration:
                return
            except (ConnectionResetError, BrokenPipeError, EOFError) as exc:
                if self.num_workers == 0:
                    raise
                dead = _dead_workers(getattr(iterator, "_workers", []))
                shutdown = getattr(iterator, "_shutdown_workers", None)
                if shutdown is not None:
                    shutdown()
                raise RuntimeError(
                    f"DataLoader worker (pid {dead or 'unknown'}) exited unexpectedly while reading "
                    f"{self.block_dataset.reader.info.name!r}: {self._delivered} of {total} batches were delivered "
                    f"({type(exc).__name__}: {exc}); the epoch is incomplete"
                ) from exc
            yield envelope

    def _finish_epoch(self) -> None:
        if self.on_epoch_end is not None:
            self.on_epoch_end(self.stats)

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
