"""Prefetch: load blocks in background threads, a bounded number ahead of the consumer, results in order.

Threads (not processes) keep fetched blocks in the consumer's memory with no hand-over cost; database drivers
release the GIL while they wait on the network, so several queries are in flight at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Prefetcher:
    """Maps ``load`` over keys with up to ``depth`` loads running ahead on ``threads`` threads.

    ``depth=0`` loads synchronously in the caller's thread (the baseline without prefetch).
    """

    def __init__(self, depth: int, threads: int = 1) -> None:
        self.depth = max(0, depth)
        self.threads = max(1, threads)
        self._executor: ThreadPoolExecutor | None = None

    def map(self, load: Callable[[K], V], keys: Iterable[K]) -> Iterator[tuple[K, V]]:
        if self.depth == 0:
            for key in keys:
                yield key, load(key)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="ldm8-prefetch")
        pending: deque[tuple[K, Future[V]]] = deque()
        it = iter(keys)
        try:
            for key in it:
                pending.append((key, self._executor.submit(load, key)))
                if len(pending) > self.depth:
                    done_key, future = pending.popleft()
                    yield done_key, future.result()
            while pending:
                done_key, future = pending.popleft()
                yield done_key, future.result()
        finally:
            for _, future in pending:
                future.cancel()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
