"""CacheWriter: fills the block cache from a background thread, so a cold epoch's reads never wait on a commit.

Each LMDB commit syncs to disk. Done inline, that wait sat between a prefetch thread's queries; here one thread
commits whatever blocks are queued in a single transaction (whole blocks only, so a killed run still leaves whole
blocks), while the readers go on. The queue is bounded: a disk slower than the database slows the epoch down
rather than piling up blocks in memory.
"""

from __future__ import annotations

import os
import queue
import threading

from lightning_dm8.loading.cache import BlockCache

_QUEUE_BLOCKS = 16
_TRANSACTION_BYTES = 32 << 20


class CacheWriter:
    """Writes ``(block, packed)`` pairs into ``cache`` from one thread per process.

    :meth:`flush` returns once everything submitted is committed (visible to every process) and re-raises a
    failure of the thread (a full cache with ``on_full="error"``); a failure also surfaces at the next
    :meth:`submit`.
    """

    def __init__(self, cache: BlockCache) -> None:
        self.cache = cache
        self._pid: int | None = None
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(_QUEUE_BLOCKS)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, block: int, packed: bytes) -> None:
        """Queue a block for the cache (waits while the queue is full)."""
        self._raise_error()
        self._start()
        self._queue.put((block, packed))

    def flush(self) -> None:
        """Wait until every submitted block is committed; raise what the writer thread failed with."""
        if self._thread is not None and self._pid == os.getpid():
            self._queue.join()
        self._raise_error()

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        if self._thread is not None and self._pid == os.getpid():
            self._queue.put(None)
            self._thread.join()
        self._thread = None

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _start(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        # First use in this process (or a forked worker, which inherits the object but not the thread).
        self._pid, self._error = os.getpid(), None
        self._queue = queue.Queue(_QUEUE_BLOCKS)
        self._thread = threading.Thread(target=self._run, name="ldm8-cache-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            size = len(items[0][1]) if items[0] is not None else 0
            while size < _TRANSACTION_BYTES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                size += len(item[1]) if item is not None else 0
            blocks = [item for item in items if item is not None]
            stop = len(blocks) < len(items)
            try:
                if self._error is None:
                    self.cache.put_many(blocks)
            except BaseException as exc:  # handed to the reading thread by flush/submit
                self._error = exc
            finally:
                for _ in items:
                    self._queue.task_done()
