"""CacheWriter: fills the block cache from a background thread, so a cold epoch's reads never wait on a commit.

A commit copies the blocks into the cache file (it does not wait for the disk: the environment is synced once, when
the writer stops; see :mod:`~lightning_dm8.loading.cache`). Done inline, that copy sat between a prefetch thread's
queries; here one thread commits whatever blocks are queued in a single transaction (whole blocks only, so a killed
run still leaves whole blocks), while the readers go on. The queue is bounded: a disk slower than the database slows
the epoch down rather than piling up blocks in memory.
"""

from __future__ import annotations

import functools
import queue
import threading

from lightning_dm8.db.process_local import ProcessLocal
from lightning_dm8.loading.cache import BlockCache

_QUEUE_BLOCKS = 16
_TRANSACTION_BYTES = 32 << 20


class CacheWriter:
    """Writes ``(block, packed)`` pairs into ``cache`` from one thread per process (started on the first
    :meth:`submit` in a process; a forked child starts its own).

    :meth:`flush` returns once everything submitted is committed (visible to every process, not yet on disk) and
    re-raises a failure of the thread (a full cache with ``on_full="error"``); a failure also surfaces at the next
    :meth:`submit`. :meth:`close` also syncs what this process wrote to disk. The writer uses the cache, it does
    not close it.
    """

    def __init__(self, cache: BlockCache) -> None:
        self.cache = cache
        self._thread: ProcessLocal[_WriterThread] = ProcessLocal(
            functools.partial(_WriterThread, cache), close=_WriterThread.stop)

    def submit(self, block: int, packed: bytes | bytearray) -> None:
        """Queue a block for the cache (waits while the queue is full)."""
        thread = self._thread.get()
        thread.raise_error()
        thread.queue.put((block, packed))

    def flush(self) -> None:
        """Wait until every submitted block is committed; raise what the writer thread failed with."""
        thread = self._thread.peek()
        if thread is not None:
            thread.queue.join()
            thread.raise_error()

    def close(self) -> None:
        """Commit what is queued, stop the thread, and sync the cache to disk."""
        self._thread.close()


class _WriterThread:
    """One process's writer thread, its queue, and the failure it has not reported yet."""

    def __init__(self, cache: BlockCache) -> None:
        self.cache = cache
        self.queue: queue.Queue[tuple[int, bytes | bytearray] | None] = queue.Queue(_QUEUE_BLOCKS)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ldm8-cache-writer", daemon=True)
        self.thread.start()

    def raise_error(self) -> None:
        error, self.error = self.error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        """Commit what is queued, then sync: this process is done writing, the flush costs the teardown."""
        self.queue.put(None)
        self.thread.join()
        self.cache.sync()

    def _run(self) -> None:
        stop = False
        while not stop:
            items = [self.queue.get()]
            size = len(items[0][1]) if items[0] is not None else 0
            while size < _TRANSACTION_BYTES:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                size += len(item[1]) if item is not None else 0
            blocks = [item for item in items if item is not None]
            stop = len(blocks) < len(items)
            try:
                if self.error is None:
                    self.cache.put_many(blocks)
            except BaseException as exc:  # handed to the reading thread by flush/submit
                self.error = exc
            finally:
                for _ in items:
                    self.queue.task_done()
