"""Checkpoint bytes in chunk rows: written in bounded transactions, read back into a file and verified.

How a chunk is read (whole, in SQL substring slices, or through an incremental blob handle) is the backend's
choice (``Backend.chunk_opener``); this module drives it, checks every length and the SHA-256 of the whole.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, Any

import sqlalchemy as sa

from lightning_dm8.checkpoint.errors import CheckpointCorruptError, CheckpointNotFoundError
from lightning_dm8.checkpoint.headers import HeaderRepository
from lightning_dm8.checkpoint.records import CheckpointInfo
from lightning_dm8.checkpoint.schema import ModelTables
from lightning_dm8.db.backends.base import bind
from lightning_dm8.db.blobs import ChunkOpener
from lightning_dm8.db.engine import Database


class ChunkIO:
    """The chunk rows of model table ``tables.chunks``; ``headers`` tells a deleted checkpoint from a corrupt one."""

    def __init__(self, db: Database, tables: ModelTables, headers: HeaderRepository) -> None:
        self.db = db
        self.tables = tables
        self.headers = headers

    @property
    def where(self) -> str:
        return self.headers.where

    def chunk_query(self) -> sa.Select:
        """One chunk's bytes by ``(r, v, n)``, run on a raw cursor: no driver ever buffers more than one chunk."""
        chunks = self.tables.chunks
        return sa.select(chunks.c.data).where(*self._chunk_key())

    def _chunk_key(self) -> tuple[sa.ColumnElement[bool], ...]:
        chunks = self.tables.chunks
        return (chunks.c.run == sa.bindparam("r"), chunks.c.version == sa.bindparam("v"),
                chunks.c.chunk_no == sa.bindparam("n"))

    def read(self, info: CheckpointInfo) -> bytes:
        """The verified bytes of ``info`` in one object (exports, the command line; loads use :meth:`read_into`)."""
        out = io.BytesIO()
        self.read_into(info, out)
        return out.getvalue()

    def read_into(self, info: CheckpointInfo, target: IO[bytes]) -> None:
        """Write the bytes of ``info`` to ``target`` (an empty file) as they arrive, and check their size and SHA-256
        against the header: on :class:`CheckpointCorruptError` ``target`` holds unverified bytes and must be dropped.

        Each piece is hashed on a second thread (hashlib releases the GIL) while the next one is fetched.
        """
        digest = hashlib.sha256()
        position = 0
        problem = None
        with self.headers.session(f"read checkpoint {info.run!r} version {info.version}") as conn:
            with self.opener(conn, info) as open_chunk, ThreadPoolExecutor(1, "ldm8-sha256") as hasher:
                for number in range(info.chunk_count):
                    opened = open_chunk(number)
                    if opened is None:
                        problem = f"chunk {number} of {info.chunk_count} is missing"
                        break
                    length, pieces = opened
                    end = position + length
                    if end > info.size_bytes:
                        problem = f"chunk {number} runs past the recorded size of {info.size_bytes} bytes"
                        break
                    for data in pieces:
                        if len(data) > end - position:
                            break
                        target.write(data)
                        hasher.submit(digest.update, data)  # in order, one thread
                        position += len(data)
                    if position != end:  # the row went (or was replaced) between two slices of it
                        problem = f"chunk {number} of {info.chunk_count} changed while it was being read"
                        break
        if problem is None and position != info.size_bytes:
            problem = f"the chunks hold {position} bytes, the header records {info.size_bytes}"
        if problem is None and digest.hexdigest() != info.sha256:
            problem = f"SHA-256 {digest.hexdigest()} differs from the recorded {info.sha256}"
        if problem is not None:
            self._raise_unreadable(info, problem)

    @contextmanager
    def opener(self, conn: sa.Connection, info: CheckpointInfo) -> Iterator[ChunkOpener]:
        """How this backend reads the chunks of ``info`` (``Backend.chunk_opener``): in slices where that is cheap,
        whole elsewhere."""
        chunks = self.tables.chunks
        driver = conn.connection.driver_connection
        cursor = self.db.backend.raw_cursor(driver)

        def prepare(*columns: sa.ColumnElement[Any]) -> Callable[..., Any]:
            """A query of ``columns`` for chunk ``n`` of ``info``, compiled once: called with the other parameters,
            it returns the row or None."""
            compiled = sa.select(*columns).where(*self._chunk_key()).compile(dialect=conn.dialect)
            statement = str(compiled)

            def fetch(**values: Any) -> Any:
                cursor.execute(statement, bind(compiled, {"r": info.run, "v": info.data_version, **values}))
                return cursor.fetchone()

            return fetch

        try:
            yield self.db.backend.chunk_opener(prepare, chunks.c.data, driver)
        finally:
            cursor.close()

    def _raise_unreadable(self, info: CheckpointInfo, problem: str) -> None:
        if not any(c.version == info.version for c in self.headers.infos(info.run)):
            raise CheckpointNotFoundError(
                f"checkpoint {info.run!r} version {info.version} was deleted from {self.where} while it was being read"
            )
        raise CheckpointCorruptError(
            f"checkpoint {info.run!r} version {info.version} in {self.where} is corrupt: {problem}. It will not be "
            f"loaded; load another version (lightning-dm8 checkpoints list) or delete this one."
        )

    def write(self, run: str, version: int, view: memoryview, chunk: int, count: int, commit_bytes: int) -> None:
        """Chunk rows ``0..count-1`` of ``view``, about ``commit_bytes`` per transaction."""
        per_commit = max(1, commit_bytes // chunk)
        for first in range(0, count, per_commit):
            with self.db.begin(f"write checkpoint {run!r} version {version}") as conn:
                for number in range(first, min(first + per_commit, count)):
                    data = bytes(view[number * chunk : (number + 1) * chunk])
                    self.db.backend.insert_rows(conn, self.tables.chunks, [(run, version, number, data)])
