"""Checkpoint bytes in and out of the model table: chunked, atomic, verified.

The facade over the header rows (:mod:`~lightning_dm8.checkpoint.headers`), the chunk rows
(:mod:`~lightning_dm8.checkpoint.chunks`) and the payload adapter (:mod:`~lightning_dm8.checkpoint.payload`). A save
is three steps: (1) clean this run's leftovers and insert the header with ``complete = 0`` (or, when the
run already holds the same bytes, a complete header pointing at them, and stop there); (2) write the
chunks in transactions of about ``commit_bytes`` (bounded transactions: MySQL's redo log and DM8's rollback
segments stay small, and progress is visible); (3) flip ``complete`` to 1 and drop older checkpoints of the same
name, in one transaction. Readers only see ``complete = 1`` rows, so a process killed at any point leaves every
earlier checkpoint intact and nothing partial visible; step (1) of the run's next save removes the leftovers.
Every read checks the size and SHA-256 recorded in the header.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from lightning_dm8.checkpoint.chunks import ChunkIO
from lightning_dm8.checkpoint.headers import HeaderRepository
from lightning_dm8.checkpoint.paths import LATEST, Selector, check_run
from lightning_dm8.checkpoint.payload import load_payload, payload_file
from lightning_dm8.checkpoint.records import CheckpointInfo, CheckpointMeta, info_from_mapping
from lightning_dm8.checkpoint.schema import DEFAULT_TABLE, ModelTables, model_tables
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import LightningDM8Error
from lightning_dm8.tables.registry import now

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 32 << 20
"""32 MiB per chunk row: few round trips, modest driver buffers, far below DM8's 2 GB LOB cap."""
DEFAULT_COMMIT_BYTES = 64 << 20


class CheckpointStore:
    """The model table ``table`` (and ``<table>_chunks``) of one database.

    Args:
        db: the database (a :class:`Database` or a URL).
        table: the model table's name.
        chunk_size: bytes per chunk row; lowered automatically below MySQL's ``max_allowed_packet``.
        commit_bytes: chunk bytes written per transaction.
    """

    def __init__(
        self,
        db: Database | str,
        table: str = DEFAULT_TABLE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        commit_bytes: int = DEFAULT_COMMIT_BYTES,
    ) -> None:
        self.db = db if isinstance(db, Database) else Database(db)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of bytes; got {chunk_size}")
        self.table = table
        self.tables: ModelTables = model_tables(table, self.db.backend)
        self.chunk_size = int(chunk_size)
        self.commit_bytes = max(int(commit_bytes), 1)
        self._ready = False
        self._effective_chunk: int | None = None
        self.headers = HeaderRepository(self.db, self.tables, table)
        self.chunks = ChunkIO(self.db, self.tables, self.headers)

    def __repr__(self) -> str:
        return f"CheckpointStore({self.db.url!r}, table={self.table!r})"

    @property
    def where(self) -> str:
        return f"model table {self.table!r} in {self.db.url}"

    def ensure_tables(self) -> None:
        """Create both tables if missing (tolerating another process creating them at the same moment)."""
        if self._ready:
            return
        for table in (self.tables.header, self.tables.chunks):
            try:
                with self.db.begin(f"create {table.name!r}") as conn:
                    self.db.backend.create_table(conn, table, checkfirst=True)
            except LightningDM8Error:
                with self.db.connect(f"inspect {table.name!r}") as conn:
                    if not sa.inspect(conn).has_table(table.name):
                        raise
        self._ready = True

    def effective_chunk_size(self, conn: sa.Connection) -> int:
        """``chunk_size``, or less on MySQL/MariaDB when the server's ``max_allowed_packet`` demands it."""
        if self._effective_chunk is None:
            size = self.chunk_size
            limit = self.db.backend.chunk_size_limit(conn)
            if limit is not None and limit < size:
                log.debug("chunks of %d bytes on %s (the server's statement size limit)", limit, self.db.url)
                size = limit
            self._effective_chunk = size
        return self._effective_chunk

    def load(self, info: CheckpointInfo, map_location: Any, weights_only: bool | None = True) -> dict[str, Any]:
        """The verified checkpoint of ``info`` unpickled by ``torch.load``, its tensors mapped from the file the bytes
        were fetched into: data only (``weights_only`` True or None), objects too only when the caller trusts it
        (False; see :mod:`lightning_dm8.checkpoint.payload`)."""
        what = f"checkpoint {info.run!r} version {info.version} in {self.where}"
        with payload_file() as file:
            self.chunks.read_into(info, file)
            return load_payload(file, map_location, weights_only, what)

    # -- what the header repository and the chunk rows answer ------------------------------------------------------

    def infos(self, run: str | None = None, include_incomplete: bool = False) -> list[CheckpointInfo]:
        """Header rows ordered by run and version; only complete ones unless ``include_incomplete``."""
        return self.headers.infos(run, include_incomplete)

    def runs(self) -> list[str]:
        return self.headers.runs()

    def resolve(self, run: str, selector: Selector = LATEST) -> CheckpointInfo:
        """The complete checkpoint ``selector`` names in ``run``; :class:`CheckpointNotFoundError` says what exists."""
        return self.headers.resolve(run, selector)

    def delete(self, run: str, versions: Iterable[int]) -> int:
        """Delete these versions of ``run`` (missing ones are ignored); returns how many existed."""
        return self.headers.delete(run, versions)

    def delete_named(self, run: str, name: str) -> int:
        """Delete the complete checkpoints of ``run`` called ``name`` (idempotent)."""
        return self.headers.delete_named(run, name)

    def delete_incomplete(self, run: str | None = None) -> int:
        """Remove unfinished saves (of ``run``, or of every run: only when no save is running)."""
        return self.headers.delete_incomplete(run)

    def read(self, info: CheckpointInfo) -> bytes:
        """The verified bytes of ``info``: size and SHA-256 must match the header."""
        return self.chunks.read(info)

    def chunk_query(self) -> sa.Select:
        """One chunk's bytes by ``(r, v, n)``, as the chunk rows are read."""
        return self.chunks.chunk_query()

    def save(self, run: str, payload: bytes, meta: CheckpointMeta) -> CheckpointInfo:
        """Store ``payload`` as the run's next version; the header turns visible only once every chunk is written.

        Bytes identical to a complete checkpoint of the run are not written again: the new header points at them.
        """
        check_run(run)
        self.ensure_tables()
        view = memoryview(payload)
        size = len(view)
        sha = hashlib.sha256(view).hexdigest()
        header = self.tables.header
        with self.db.begin(f"start checkpoint of run {run!r} in {self.table!r}") as conn:
            chunk = self.effective_chunk_size(conn)
            self.headers.delete_incomplete_of(conn, run)
            latest = conn.execute(sa.select(sa.func.max(header.c.version)).where(header.c.run == run)).scalar()
            version = int(latest or 0) + 1
            same = conn.execute(
                sa.select(header.c.data_version, header.c.chunk_count)
                .where(header.c.run == run, header.c.complete == 1)
                .where(header.c.sha256 == sha, header.c.size_bytes == size)
                .limit(1)
            ).first()
            data_version, count = (int(same[0]), int(same[1])) if same else (version, -(-size // chunk))
            values = {
                "run": run, "version": version, "name": meta.name, "kind": meta.kind, "epoch": meta.epoch,
                "global_step": meta.global_step, "monitor": meta.monitor, "monitor_value": meta.monitor_value,
                "monitor_mode": meta.monitor_mode, "created_at": now(), "size_bytes": size, "sha256": sha,
                "chunk_count": count, "model_class": meta.model_class, "complete": 1 if same else 0,
                "data_version": data_version,
            }
            conn.execute(header.insert().values(**values))
            if same:  # nothing to write: visible at once, in this transaction
                self.headers.replace_named(conn, run, version, meta.name)
        if not same:
            try:
                self.chunks.write(run, version, view, chunk, count, self.commit_bytes)
                self.headers.publish(run, version, meta.name)
            except BaseException:
                self.headers.forget(run, version)
                raise
        log.debug("saved checkpoint %r version %d (%d bytes in the chunks of version %d) to %s",
                  run, version, size, data_version, self.where)
        return info_from_mapping({**values, "complete": 1})
