"""Reading row ranges of a dataset table as blocks, one raw connection per thread, reconnecting on loss."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from lightning_dm8.db.backends import Backend
from lightning_dm8.db.engine import Database
from lightning_dm8.db.fastpath import RangeQuery
from lightning_dm8.db.process_local import ProcessLocal
from lightning_dm8.errors import DatabaseUnavailableError, InvalidDatasetError
from lightning_dm8.tables.block import HEADROOM, Block, block_from_rows
from lightning_dm8.tables.registry import DatasetInfo


def flat_nbytes(block: Block) -> int:
    """Bytes of a block read from the database, in its flat form (row ids and the columns read, without the storage
    header): what a narrower selection of columns saves."""
    assert block.flat is not None, "a block decoded from database rows is built in its flat form"
    return len(block.flat) - HEADROOM


def _sever(backend: Backend, dbapi_connection: Any, fired: threading.Event) -> None:
    fired.set()
    backend.sever(dbapi_connection)


class Watchdog:
    """One thread per process that calls what is due: a read arms it with a deadline before it starts and disarms it
    when it ends.

    A ``threading.Timer`` per read started a thread for every block, and ``Timer.start`` waits until the new thread
    runs, which on a busy machine (the prefetch threads holding the GIL in turn) cost 1-2 ms per block: a third of
    a cold epoch's read time. Arming and disarming here is a heap push and a set update; the thread wakes only when
    a deadline is due or an earlier one is armed.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._cancelled: set[int] = set()
        self._numbers = itertools.count()
        self._wake = threading.Condition(threading.Lock())
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="ldm8-read-watchdog", daemon=True)
        self._thread.start()

    def arm(self, deadline: float, action: Callable[..., Any], *args: Any) -> int:
        """Call ``action(*args)`` at ``deadline`` (``time.monotonic()``) unless :meth:`disarm` comes first."""
        number = next(self._numbers)
        with self._wake:
            earliest = self._due[0][0] if self._due else None
            heapq.heappush(self._due, (deadline, number, action, args))
            if earliest is None or deadline < earliest:
                self._wake.notify()
        return number

    def disarm(self, number: int) -> None:
        """Forget what :meth:`arm` numbered ``number`` (a no-op when it already ran)."""
        with self._wake:
            self._cancelled.add(number)
            if len(self._cancelled) > 256:  # drop the cancelled entries still waiting for their (distant) deadline
                self._due = [entry for entry in self._due if entry[1] not in self._cancelled]
                heapq.heapify(self._due)
                self._cancelled.clear()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wake.wait(None if not self._due else max(0.0, self._due[0][0] - time.monotonic()))
                if self._stopped:
                    return
                _, number, action, args = heapq.heappop(self._due)
                if number in self._cancelled:
                    self._cancelled.discard(number)
                    continue
            try:
                action(*args)
            except Exception:  # the read it guards fails on its own; the watchdog goes on for the others
                pass


_WATCHDOG: ProcessLocal[Watchdog] = ProcessLocal(Watchdog, close=Watchdog.stop)


class TableReader:
    """Reads ``[lo, hi)`` row ranges of one dataset table.

    Each thread (a prefetch thread, a DataLoader worker) gets its own connection, opened on first use in the
    process that uses it. A lost connection is reopened with exponential backoff for up to ``max_wait`` seconds,
    then a :class:`DatabaseUnavailableError` says so; a read still unanswered at that point (a hung server) is cut
    off and fails the same way. ``reconnects`` counts the retries after a lost connection and
    ``reconnect_seconds`` the time they took, ``bytes_read`` the bytes of the blocks read (their flat form,
    :func:`flat_nbytes`: what selecting fewer columns saves), in this process.
    """

    def __init__(self, db: Database, info: DatasetInfo, *, max_wait: float = 60.0) -> None:
        self.db = db
        self.info = info
        self.max_wait = max_wait
        # Per process: the thread-local connections and the compiled range query.
        self._threads: ProcessLocal[threading.local] = ProcessLocal(threading.local)
        self._query: ProcessLocal[RangeQuery] = ProcessLocal(self._compile)
        self.queries = 0
        self.reconnects = 0
        self.reconnect_seconds = 0.0
        self.bytes_read = 0
        self._counting: ProcessLocal[threading.Lock] = ProcessLocal(threading.Lock)

    def _compile(self) -> RangeQuery:
        return RangeQuery(self.info.table(self.db.backend), self.db.backend, self.db.dialect)

    def _connection(self) -> Any:
        local = self._threads.get()
        conn = getattr(local, "conn", None)
        if conn is None:
            with self.db.errors(f"connect to read {self.info.name!r}"):
                conn = self.db.engine.raw_connection()
            local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        local = self._threads.get()
        conn = getattr(local, "conn", None)
        local.conn = None
        if conn is not None:
            try:
                conn.invalidate()
            except Exception:  # already broken; nothing more to release
                pass

    def fetch_rows(self, lo: int, hi: int) -> list[Any]:
        """Raw rows with ``lo <= row_id < hi``, retrying on a lost connection with bounded backoff."""
        start = time.monotonic()
        deadline = start + self.max_wait
        delay = 0.05
        lost = False
        while True:
            watchdog: int | None = None
            fired = threading.Event()
            try:
                conn = self._connection()
                # A server that stops answering without closing the connection (hung, or a network that drops
                # packets) would block the read forever: past the deadline its socket is shut down, which turns the
                # wait into a lost connection (where the backend can cut a read; SQLite has no server to wait for).
                if self.db.backend.cuts_hung_reads:
                    watchdog = _WATCHDOG.get().arm(max(deadline, time.monotonic() + 0.01), _sever,
                                                   self.db.backend, conn.driver_connection, fired)
                with self.db.errors(f"read rows {lo}..{hi - 1} of {self.info.name!r}"):
                    rows = self._query.get().fetch(conn.driver_connection, lo, hi - 1)
                if watchdog is not None:
                    _WATCHDOG.get().disarm(watchdog)
                self.queries += 1
                if lost:
                    self.reconnect_seconds += time.monotonic() - start
                return rows
            except DatabaseUnavailableError as exc:
                if watchdog is not None:
                    _WATCHDOG.get().disarm(watchdog)
                self._drop_connection()
                lost = True
                self.reconnects += 1
                if time.monotonic() + delay > deadline:
                    what = "the server gave no answer" if fired.is_set() else "gave up after retrying"
                    raise DatabaseUnavailableError(
                        f"{exc} ({what} for {self.max_wait:.0f} s; raise max_wait to wait longer)"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except BaseException:
                if watchdog is not None:
                    _WATCHDOG.get().disarm(watchdog)
                raise

    def read(self, lo: int, hi: int) -> Block:
        """Rows ``[lo, hi)`` as a block; a missing row id is an error naming the table and the id."""
        rows = self.fetch_rows(lo, hi)
        if len(rows) != hi - lo:
            present = {int(r[0]) for r in rows}
            missing = next(i for i in range(lo, hi) if i not in present)
            raise InvalidDatasetError(
                f"table {self.info.name!r}: row_id {missing} is missing (rows {lo}..{hi - 1} returned {len(rows)} of "
                f"{hi - lo}); row ids must be dense 0..N-1 — rewrite the table with write_arrays/write_query"
            )
        block = block_from_rows(rows, self.info.codec, self.info.label_kind, self.info.name)
        with self._counting.get():  # prefetch threads read at once
            self.bytes_read += flat_nbytes(block)
        return block

    def close(self) -> None:
        """Close this thread's connection (opened in this process; an inherited one is only forgotten)."""
        local = self._threads.peek()
        if local is None:
            return
        conn, local.conn = getattr(local, "conn", None), None
        if conn is not None:
            conn.close()
