"""Reading row ranges of a dataset table as blocks, one raw connection per thread, reconnecting on loss."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from lightning_dm8.db.engine import Database
from lightning_dm8.db.fastpath import RangeQuery
from lightning_dm8.errors import DatabaseUnavailableError, InvalidDatasetError
from lightning_dm8.tables.block import Block, block_from_rows
from lightning_dm8.tables.registry import DatasetInfo


class TableReader:
    """Reads ``[lo, hi)`` row ranges of one dataset table.

    Each thread (a prefetch thread, a DataLoader worker) gets its own connection, opened on first use in the
    process that uses it. A lost connection is reopened with exponential backoff for up to ``max_wait`` seconds,
    then a :class:`DatabaseUnavailableError` says so.
    """

    def __init__(self, db: Database, info: DatasetInfo, *, max_wait: float = 60.0) -> None:
        self.db = db
        self.info = info
        self.max_wait = max_wait
        self._local = threading.local()
        self._pid = os.getpid()
        self._query: RangeQuery | None = None
        self.queries = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_local=None, _query=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _connection(self) -> Any:
        if self._pid != os.getpid():
            self._local, self._pid, self._query = threading.local(), os.getpid(), None
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self.db.errors(f"connect to read {self.info.name!r}"):
                conn = self.db.engine.raw_connection()
            self._local.conn = conn
        return conn

    def _range_query(self) -> RangeQuery:
        if self._query is None:
            self._query = RangeQuery(self.info.table(self.db.backend), self.db.dialect)
        return self._query

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.invalidate()
            except Exception:  # already broken; nothing more to release
                pass

    def fetch_rows(self, lo: int, hi: int) -> list[Any]:
        """Raw rows with ``lo <= row_id < hi``, retrying on a lost connection with bounded backoff."""
        deadline = time.monotonic() + self.max_wait
        delay = 0.05
        while True:
            try:
                conn = self._connection()
                with self.db.errors(f"read rows {lo}..{hi - 1} of {self.info.name!r}"):
                    rows = self._range_query().fetch(conn.driver_connection, lo, hi - 1)
                self.queries += 1
                return rows
            except DatabaseUnavailableError as exc:
                self._drop_connection()
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailableError(
                        f"{exc} (gave up after retrying for {self.max_wait:.0f} s; raise max_wait to wait longer)"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

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
        return block_from_rows(rows, self.info.codec, self.info.label_kind, self.info.name)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None) if self._local is not None else None
        if conn is not None and self._pid == os.getpid():
            conn.close()
        if self._local is not None:
            self._local.conn = None
