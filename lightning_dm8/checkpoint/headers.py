"""The header rows of a model table: which checkpoints exist, which one a selector names, what to delete.

A header row describes one checkpoint (run, version, name, metric, size, SHA-256, ``complete``); its bytes are in
chunk rows (:mod:`lightning_dm8.checkpoint.chunks`). Readers only see ``complete = 1`` rows. Deleting headers
deletes the chunk rows no remaining header of the run points at.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa

from lightning_dm8.checkpoint.errors import CheckpointConflictError, CheckpointNotFoundError
from lightning_dm8.checkpoint.paths import BEST, LATEST, Selector, check_run, parse_selector
from lightning_dm8.checkpoint.policy import pick_best
from lightning_dm8.checkpoint.records import CheckpointInfo, info_from_row
from lightning_dm8.checkpoint.schema import ModelTables
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import LightningDM8Error, TableNotFoundError

log = logging.getLogger(__name__)


class HeaderRepository:
    """The header rows of model table ``tables.header`` (and the chunk rows they own) in ``db``."""

    def __init__(self, db: Database, tables: ModelTables, table: str) -> None:
        self.db = db
        self.tables = tables
        self.table = table

    @property
    def where(self) -> str:
        return f"model table {self.table!r} in {self.db.url}"

    def infos(self, run: str | None = None, include_incomplete: bool = False) -> list[CheckpointInfo]:
        """Header rows ordered by run and version; only complete ones unless ``include_incomplete``."""
        header = self.tables.header
        query = sa.select(header).order_by(header.c.run, header.c.version)
        if run is not None:
            query = query.where(header.c.run == run)
        if not include_incomplete:
            query = query.where(header.c.complete == 1)
        with self.session(f"list checkpoints in {self.table!r}") as conn:
            return [info_from_row(r) for r in conn.execute(query)]

    def runs(self) -> list[str]:
        header = self.tables.header
        with self.session(f"list runs in {self.table!r}") as conn:
            query = sa.select(header.c.run).where(header.c.complete == 1).distinct().order_by(header.c.run)
            return [r[0] for r in conn.execute(query)]

    def resolve(self, run: str, selector: Selector = LATEST) -> CheckpointInfo:
        """The complete checkpoint ``selector`` names in ``run``; :class:`CheckpointNotFoundError` says what exists."""
        check_run(run)
        selector = parse_selector(selector)
        infos = self.infos(run)
        if not infos:
            others = self.runs()
            hint = f"runs with checkpoints: {', '.join(others[:20])}" if others else "it holds no checkpoints yet"
            raise CheckpointNotFoundError(f"no checkpoint of run {run!r} in {self.where}; {hint}")
        found: CheckpointInfo | None
        if selector == LATEST:
            found = infos[-1]
        elif selector == BEST:
            found = pick_best(infos)
        elif isinstance(selector, int):
            found = next((c for c in infos if c.version == selector), None)
        else:
            found = next((c for c in reversed(infos) if c.name == selector), None)
        if found is None:
            listed = ", ".join(f"{c.version} ({c.name})" if c.name else str(c.version) for c in infos[-20:])
            what = f"version {selector}" if isinstance(selector, int) else f"checkpoint named {selector!r}"
            raise CheckpointNotFoundError(f"run {run!r} has no {what} in {self.where}; it has versions {listed}")
        return found

    def publish(self, run: str, version: int, name: str | None) -> None:
        header = self.tables.header
        with self.db.begin(f"publish checkpoint {run!r} version {version}") as conn:
            flipped = conn.execute(
                header.update()
                .where(header.c.run == run, header.c.version == version, header.c.complete == 0)
                .values(complete=1)
            ).rowcount
            if flipped != 1:
                raise CheckpointConflictError(
                    f"checkpoint {run!r} version {version} disappeared from {self.where} while it was being saved: "
                    f"is another process saving under the same run name? Give each training its own run."
                )
            self.replace_named(conn, run, version, name)

    def replace_named(self, conn: sa.Connection, run: str, version: int, name: str | None) -> None:
        """Saving under a name replaces the run's older checkpoints of that name, as writing a file would."""
        if name is None:
            return
        header = self.tables.header
        older = conn.execute(
            sa.select(header.c.version).where(header.c.run == run, header.c.name == name, header.c.version != version)
        ).scalars().all()
        self.delete_versions(conn, run, [int(v) for v in older])

    def forget(self, run: str, version: int) -> None:
        """Best-effort removal of a failed save; whatever stays is incomplete, so invisible and cleaned later."""
        try:
            with self.db.begin(f"remove failed checkpoint {run!r} version {version}") as conn:
                header = self.tables.header
                done = conn.execute(
                    sa.select(header.c.complete).where(header.c.run == run, header.c.version == version)
                ).scalar()
                if done == 0:
                    self.delete_versions(conn, run, [version])
        except Exception:  # the save's own error matters more
            log.debug("could not remove the failed checkpoint %r version %d", run, version, exc_info=True)

    def delete_versions(self, conn: sa.Connection, run: str, versions: Sequence[int]) -> int:
        """Delete these headers, and the chunk rows that no remaining header of the run points at."""
        if not versions:
            return 0
        header, chunks = self.tables.header, self.tables.chunks
        doomed = sorted(set(versions))
        owners: set[int] = set(doomed)
        for batch in _batches(doomed, 500):
            owners.update(conn.execute(
                sa.select(header.c.data_version).where(header.c.run == run, header.c.version.in_(batch))
            ).scalars().all())
            conn.execute(header.delete().where(header.c.run == run, header.c.version.in_(batch)))
        still_used = set(conn.execute(
            sa.select(header.c.data_version).where(header.c.run == run).distinct()
        ).scalars().all())
        for batch in _batches(sorted(owners - still_used), 500):
            conn.execute(chunks.delete().where(chunks.c.run == run, chunks.c.version.in_(batch)))
        return len(doomed)

    def delete_incomplete_of(self, conn: sa.Connection, run: str) -> int:
        header = self.tables.header
        stale = conn.execute(
            sa.select(header.c.version).where(header.c.run == run, header.c.complete == 0)
        ).scalars().all()
        if stale:
            log.info("removing %d unfinished checkpoint(s) of run %r from %s", len(stale), run, self.where)
        return self.delete_versions(conn, run, [int(v) for v in stale])

    def delete(self, run: str, versions: Iterable[int]) -> int:
        """Delete these versions of ``run`` (missing ones are ignored); returns how many existed."""
        wanted = sorted({int(v) for v in versions})
        if not wanted:
            return 0
        header = self.tables.header
        with self.session(f"delete checkpoints of run {run!r}", write=True) as conn:
            present = conn.execute(
                sa.select(header.c.version).where(header.c.run == run, header.c.version.in_(wanted))
            ).scalars().all()
            return self.delete_versions(conn, run, [int(v) for v in present])

    def delete_named(self, run: str, name: str) -> int:
        """Delete the complete checkpoints of ``run`` called ``name`` (idempotent)."""
        header = self.tables.header
        with self.session(f"delete checkpoint {name!r} of run {run!r}", write=True) as conn:
            found = conn.execute(
                sa.select(header.c.version).where(header.c.run == run, header.c.name == name, header.c.complete == 1)
            ).scalars().all()
            return self.delete_versions(conn, run, [int(v) for v in found])

    def delete_incomplete(self, run: str | None = None) -> int:
        """Remove unfinished saves (of ``run``, or of every run: only when no save is running)."""
        header = self.tables.header
        with self.session("delete unfinished checkpoints", write=True) as conn:
            runs = [run] if run is not None else conn.execute(
                sa.select(header.c.run).where(header.c.complete == 0).distinct()
            ).scalars().all()
            return sum(self.delete_incomplete_of(conn, r) for r in runs)

    @contextmanager
    def session(self, where: str, write: bool = False) -> Iterator[sa.Connection]:
        """A connection (a transaction when ``write``) in which a missing model table reads as "no checkpoints"."""
        try:
            with self.db.begin(where) if write else self.db.connect(where) as conn:
                yield conn
        except LightningDM8Error as exc:
            # Not every driver error code maps to TableNotFoundError (PyMySQL >= 1.2 reports the SQLSTATE), so a
            # failure is checked against the catalogue before it is called a missing table.
            if isinstance(exc, TableNotFoundError) or not self._tables_exist():
                raise CheckpointNotFoundError(
                    f"there is no {self.where}: nothing has been saved there yet (check the URL and the table name)"
                ) from exc
            raise

    def _tables_exist(self) -> bool:
        try:
            with self.db.connect(f"inspect {self.table!r}") as conn:
                inspector = sa.inspect(conn)
                return inspector.has_table(self.tables.header.name) and inspector.has_table(self.tables.chunks.name)
        except LightningDM8Error:
            return True  # cannot tell: keep the original error


def _batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
