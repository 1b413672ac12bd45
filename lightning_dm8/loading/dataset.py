"""The torch IterableDataset: each worker of each rank yields whole batches of its share of the epoch plan."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lightning_dm8.db.process_local import ProcessLocal
from lightning_dm8.loading.assembly import assemble_rows, group_by_block
from lightning_dm8.loading.batches import for_transfer, make_batch
from lightning_dm8.loading.cache import BlockCache
from lightning_dm8.loading.plan import Mode, PlanConfig, batches_per_rank, worker_order
from lightning_dm8.loading.prefetch import Prefetcher
from lightning_dm8.loading.source import BlockSource
from lightning_dm8.tables.block import Block
from lightning_dm8.tables.columns import slice_column
from lightning_dm8.tables.reader import TableReader

_WINDOW_BATCHES = 128
_WINDOW_BYTES = 16 << 20


@dataclass(frozen=True)
class EpochTicket:
    """Which epoch to deliver, in which order mode, and how many batches each worker already delivered (a resumed
    epoch: worker ``w`` skips ``skip[w]`` batches; empty means none)."""

    epoch: int = 0
    mode: Mode = "cold"
    skip: tuple[int, ...] = ()

    @property
    def skip_batches(self) -> int:
        return sum(self.skip)


_MODES: tuple[Mode, ...] = ("cold", "warm")


class TicketBoard:
    """The current :class:`EpochTicket`, in shared memory: worker processes started for an earlier epoch (persistent
    workers) read the ticket of the epoch they are asked for, not the one they were started with.

    The main process posts each epoch's ticket before it asks the workers for batches; a worker reads it when it
    starts the epoch. A forked worker shares the memory; a spawned one receives it through torch's pickling.
    """

    def __init__(self, num_workers: int) -> None:
        self._values = torch.zeros(2 + num_workers, dtype=torch.int64).share_memory_()

    def post(self, ticket: EpochTicket) -> None:
        workers = len(self._values) - 2
        skip = list(ticket.skip) + [0] * (workers - len(ticket.skip))
        self._values.copy_(torch.tensor([ticket.epoch, _MODES.index(ticket.mode), *skip[:workers]]))

    def read(self) -> EpochTicket:
        epoch, mode, *skip = self._values.tolist()
        return EpochTicket(int(epoch), _MODES[int(mode)], tuple(int(s) for s in skip) if any(skip) else ())


@dataclass
class BatchEnvelope:
    """A batch plus what the main process needs besides it: the row ids delivered and the loading statistics."""

    batch: Any
    row_ids: np.ndarray
    stats: dict[str, float]
    worker: int = 0


class BlockDataset(IterableDataset):
    """Yields :class:`BatchEnvelope` objects for one rank; the DataLoader must use ``batch_size=None``.

    The dataset owns its cache: the block source and the cache writer of each process use it, and :meth:`close`
    is the one place that closes this process's handle on it. Its block source, prefetch threads and cache handle
    are per process (opened on first use, forgotten by a forked worker, never pickled).

    Args:
        reader: reads the table (opens its connections lazily, per process and thread).
        plan: the epoch plan's configuration (row count, sizes, world size, workers, shuffle, seed).
        rank: this process's global rank.
        cache: the LMDB cache, or None to read the database every epoch.
        prefetch_blocks: blocks fetched ahead of the one being served (0: no prefetch).
        io_threads: threads running those fetches.
        transform / collate: optional per-sample transform (one callable, or one per column of a record) and collate
            function.
        pad_value: pad variable-length rows with this value into a :class:`~lightning_dm8.loading.batches.Padded`
            pair (None: a list of 1-D tensors).
    """

    def __init__(
        self, reader: TableReader, plan: PlanConfig, rank: int, cache: BlockCache | None, *,
        prefetch_blocks: int = 4, io_threads: int = 2, transform: Any = None, collate: Any = None,
        pad_value: float | None = None,
    ) -> None:
        self.reader = reader
        self.plan = plan
        self.rank = rank
        self.cache = cache
        self.prefetch_blocks = prefetch_blocks
        self.io_threads = io_threads
        self.transform = transform
        self.collate = collate
        self.pad_value = pad_value
        self.tickets = TicketBoard(plan.num_workers)
        self._source: ProcessLocal[BlockSource] = ProcessLocal(self._make_source, close=BlockSource.close)
        self._prefetcher: ProcessLocal[Prefetcher] = ProcessLocal(self._make_prefetcher, close=Prefetcher.close)

    def _make_source(self) -> BlockSource:
        return BlockSource(self.reader, self.plan.block_size, self.cache)

    def _make_prefetcher(self) -> Prefetcher:
        return Prefetcher(self.prefetch_blocks, self.io_threads)

    @property
    def ticket(self) -> EpochTicket:
        """The epoch to deliver next (posted by the loader; read by every worker when it starts the epoch)."""
        return self.tickets.read()

    @ticket.setter
    def ticket(self, ticket: EpochTicket) -> None:
        self.tickets.post(ticket)

    def __len__(self) -> int:
        return batches_per_rank(self.plan)

    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def source(self) -> BlockSource:
        """This process's block source."""
        return self._source.get()

    def cache_is_complete(self) -> bool:
        """Whether the cache holds every block of the table (False without a cache)."""
        return self.cache is not None and self.cache.is_complete()

    def cached_fraction(self) -> float:
        """The share of the table's blocks in the cache, 0..1 (0 without a cache)."""
        if self.cache is None or self.cache.n_blocks == 0:
            return 0.0
        return min(1.0, self.cache.cached_blocks() / self.cache.n_blocks)

    def missing_blocks(self) -> list[int]:
        """The blocks of the table not in the cache (none without a cache)."""
        if self.cache is None:
            return []
        with self.cache.reader() as txn:
            return [b for b in range(self.cache.n_blocks) if txn.get(BlockCache.key(b)) is None]

    def fill(self, blocks: list[int], on_block: Callable[[], None] | None = None) -> dict[str, float]:
        """Read ``blocks`` from the database into the cache in this process (prefetched, committed before this
        returns); returns what it cost (the :class:`LoadStats` counts)."""
        source = self.source()
        source.start_epoch()
        for _ in self._prefetcher.get().map(source.load, blocks):
            if on_block is not None:
                on_block()
        source.flush()
        return source.stats.take()

    def __iter__(self) -> Iterator[BatchEnvelope]:
        worker, num_workers = self._worker()
        if num_workers != self.plan.num_workers:
            raise RuntimeError(
                f"the dataset was planned for {self.plan.num_workers} workers but runs in {num_workers}; build it "
                f"through DM8DataModule/DM8DataLoader so the two agree"
            )
        ticket = self.ticket
        order = worker_order(self.plan, ticket.epoch, self.rank, worker, ticket.mode)
        skip = ticket.skip[worker] if worker < len(ticket.skip) else 0  # batches delivered before a resume
        skip_rows = min(len(order), skip * self.plan.batch_size)
        order = order[skip_rows:]
        source = self.source()
        source.start_epoch()
        blocks = (self._random_access if ticket.mode == "warm" and self.plan.shuffle and self.cache is not None
                  else self._streaming)(order)
        last = -(-len(order) // self.plan.batch_size) - 1
        ready = for_transfer if get_worker_info() is not None else _unchanged
        for number, block in enumerate(blocks):
            if number == last:
                # Every block this epoch read is in the cache before its last batch is handed over: whoever
                # receives it (the next epoch, another process) finds the cache as complete as the epoch made it.
                source.flush()
            yield BatchEnvelope(ready(make_batch(block, self.transform, self.collate, self.pad_value)), block.row_ids,
                                source.stats.take(), worker)

    def close(self) -> None:
        """Release this process's prefetch threads, cache writer, connections and cache handle (each opens again on
        the next use)."""
        self._prefetcher.close()
        self._source.close()
        self.reader.close()
        if self.cache is not None:
            self.cache.close()

    def _random_access(self, order: np.ndarray) -> Iterator[Block]:
        """Batches of ``order`` from the cache, gathered a window of batches (up to 16 MB) at a time: one cache
        lookup per block and window instead of one per block and batch (a random batch touches almost every block),
        so the larger the window, the less per-block work per row."""
        source = self.source()
        batch = self.plan.batch_size
        row_bytes = self.reader.info.codec.fixed_size or source.cached_row_bytes()
        window = batch * max(1, min(_WINDOW_BATCHES, _WINDOW_BYTES // max(1, batch * row_bytes)))
        try:
            for first in range(0, len(order), window):
                rows = source.rows(order[first : first + window])
                for start in range(0, len(rows), batch):
                    part = slice(start, start + batch)  # a view of the window's rows, not another copy
                    labels = None if rows.labels is None else slice_column(rows.labels, part)
                    yield Block(rows.row_ids[part], slice_column(rows.features, part), labels)
                del rows  # let this window go before the next is built: two alive at once would double the peak
        finally:
            source.end_reading()  # the epoch's snapshot is not held past its last batch, nor by an abandoned epoch

    def _streaming(self, order: np.ndarray) -> Iterator[Block]:
        """Blocks in order of first need, prefetched; rows gathered into batches; a block is dropped once used."""
        source = self.source()
        block_size = self.plan.block_size
        needed = order // block_size
        first_seen = np.unique(needed, return_index=True)[1]
        sequence = needed[np.sort(first_seen)]
        remaining = dict(zip(*np.unique(needed, return_counts=True), strict=True))
        # Blocks this worker needs only part of (at the edges of its share) are needed by another worker too.
        shared = {int(b) for b, count in remaining.items() if count < _span(source.bounds(int(b)))}
        loaded: dict[int, Block] = {}
        fetched = iter(self._prefetcher.get().map(lambda b: source.load(b, b in shared), sequence.tolist()))
        batch = self.plan.batch_size
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            groups = group_by_block(rows, block_size)
            for b, _ in groups:
                while b not in loaded:
                    key, value = next(fetched)
                    loaded[key] = value
            # Each row copied once, from its block straight to its place in the batch (no taken part in between).
            yield assemble_rows([loaded[b] for b, _ in groups], [rows[group] - b * block_size for b, group in groups],
                                [group for _, group in groups], len(rows))
            for b, group in groups:
                remaining[b] -= len(group)
                if remaining[b] == 0:
                    del loaded[b]


def _unchanged(batch: Any) -> Any:
    return batch


def _span(bounds: tuple[int, int]) -> int:
    lo, hi = bounds
    return hi - lo


def round_robin_share(counts: list[int], delivered: int) -> list[int]:
    """How many batches each worker had delivered when the DataLoader had yielded ``delivered`` in total.

    The DataLoader takes batches from its workers in turn, skipping workers that are exhausted. This holds for
    an epoch's first iteration only (a resumed iteration starts its turns again at worker 0), so the loader
    records per-worker counts; this reconstructs them for states saved with a total count only.
    """
    taken = [0] * len(counts)
    remaining = delivered
    while remaining > 0:
        progressed = False
        for w, count in enumerate(counts):
            if remaining == 0:
                break
            if taken[w] < count:
                taken[w] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            break
    return taken
