"""Removing what no reader needs: old dataset versions, and tables killed writers left behind.

Only tables the registry names, or that carry the project's own prefixes (``ldm8_d_``, ``ldm8_tmp_``) and are
named by no version, are ever dropped. A physical table shared by several versions (appends share one) goes only
with the last version that uses it. A table whose name says it is younger than ``min_age`` is left alone: it may
belong to a writer still at work.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from lightning_dm8.db.engine import Database
from lightning_dm8.tables import registry
from lightning_dm8.tables.ddl import table_exists
from lightning_dm8.tables.staging import PUBLISHED, STAGING_PREFIX
from lightning_dm8.tables.versions import PHYSICAL_PREFIX, created_at_of, drop_tables, repair_view

log = logging.getLogger(__name__)

DEFAULT_KEEP_VERSIONS = 2
"""The current version and the one before: a run that started just before a replace still finds its rows."""
DEFAULT_MIN_AGE = 3600.0


@dataclass
class Collection:
    """What a garbage collection dropped (or, in a dry run, would drop)."""

    versions: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    views_repaired: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"version {v}" for v in self.versions] + [f"table {t}" for t in self.tables]
                + [f"view {v} repaired" for v in self.views_repaired])


def _doomed_versions(conn: sa.Connection, keep: int, name: str | None) -> list[registry.DatasetInfo]:
    """Versions beyond the newest ``keep`` of each dataset, never a current one."""
    doomed: list[registry.DatasetInfo] = []
    by_name: dict[str, list[registry.DatasetInfo]] = {}
    for info in registry.list_versions(conn, name):
        by_name.setdefault(info.name, []).append(info)
    for dataset, kept in by_name.items():
        current = registry.read_info(conn, dataset)
        current_version = current.version if current is not None else None
        newest = sorted(kept, key=lambda i: i.version)[:-keep] if len(kept) > keep else []
        doomed += [i for i in newest if i.version != current_version]
    return doomed


def prune_versions(db: Database, name: str, keep: int, *, dry_run: bool = False) -> Collection:
    """Drop the versions of ``name`` beyond the newest ``keep`` and the tables only they used."""
    return collect(db, keep=keep, name=name, min_age=None, dry_run=dry_run)


def collect(
    db: Database, *, keep: int = DEFAULT_KEEP_VERSIONS, name: str | None = None,
    min_age: float | None = DEFAULT_MIN_AGE, dry_run: bool = True,
) -> Collection:
    """Drop old versions (all datasets, or ``name``), then tables no version names (when ``min_age`` is given: those
    older than it), then repair views. ``dry_run`` only reports."""
    found = Collection()
    registry.ensure_registry(db)
    with db.begin("collect old dataset versions") as conn:
        doomed = _doomed_versions(conn, keep, name)
        found.versions = [f"{i.name}@{i.version}" for i in doomed]
        gone = {(i.name, i.version) for i in doomed}
        named = {i.table_name for i in registry.list_versions(conn) if (i.name, i.version) not in gone}
        named |= {i.name for i in registry.list_infos(conn) if not i.version}  # not yet adopted: the table is its name
        if table_exists(conn, PUBLISHED.name):  # published predictions tables
            named |= set(conn.execute(sa.select(PUBLISHED.c.physical)).scalars())
        if not dry_run:
            for info in doomed:
                conn.execute(registry.VERSIONS.delete().where(
                    registry.VERSIONS.c.name == info.name, registry.VERSIONS.c.version == info.version))
        tables = sa.inspect(conn).get_table_names()
    candidates = {i.table_name for i in doomed}
    if min_age is not None:
        cutoff = time.time() - min_age
        for table in tables:
            if table.startswith((PHYSICAL_PREFIX, STAGING_PREFIX)) and table not in named:
                born = created_at_of(table)
                if born is not None and born <= cutoff:
                    candidates.add(table)
    found.tables = sorted(t for t in candidates - named if t in tables)
    if not dry_run:
        kept = drop_tables(db, found.tables)
        found.tables = [t for t in found.tables if t not in kept]
        with db.connect("list datasets") as conn:
            datasets = [name] if name is not None else [i.name for i in registry.list_infos(conn)]
        found.views_repaired = [d for d in datasets if repair_view(db, d) and name is None]
    if found.versions or found.tables:
        log.info("%s %s", "would drop" if dry_run else "dropped", ", ".join(found.lines()))
    return found
