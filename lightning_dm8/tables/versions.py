"""Publishing dataset versions: one registry transaction decides, whatever the backend's DDL commits.

A version's rows live in a physical table of their own (``ldm8_d_<time>_<random>``), written before anything points
at it. Publishing inserts the version row and repoints the dataset's registry row in one transaction: atomic on
every backend, and the registry's unique keys decide between writers racing for the same name. The dataset's own
name is then made a view of the current physical table so it stays queryable with plain SQL; that step may fail
(or be cut short by a kill) without harm, because the registry is the truth and the next write or
``repair_view`` puts the view right.

Datasets written before versions existed keep their rows in a table under their own name. They are adopted as
version 1 on first use: the table is renamed to a physical name derived from the dataset name (so a process killed
between the rename and the registry update is finished by the next one), then the view takes the name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import replace

import sqlalchemy as sa

from lightning_dm8.db.engine import Database
from lightning_dm8.errors import LightningDM8Error, TableExistsError
from lightning_dm8.tables import registry
from lightning_dm8.tables.ddl import table_exists
from lightning_dm8.tables.registry import DatasetInfo

log = logging.getLogger(__name__)

PHYSICAL_PREFIX = "ldm8_d_"
_STAMPED = re.compile(r"^ldm8_(?:d|tmp)_([0-9a-f]{8})_[0-9a-f]{8}$")
_PUBLISH_TRIES = 5


def new_physical_name() -> str:
    """A fresh physical table name; its hex timestamp lets ``gc`` tell a killed writer's table by its age."""
    return f"{PHYSICAL_PREFIX}{int(time.time()):08x}_{os.urandom(4).hex()}"


def adopted_name(name: str) -> str:
    """The physical name a pre-versions dataset table is renamed to: a function of the dataset name alone."""
    return f"{PHYSICAL_PREFIX}a_{hashlib.sha256(name.encode('utf-8')).hexdigest()[:16]}"


def created_at_of(physical: str) -> float | None:
    """The creation time encoded in a physical or staging name (seconds since the epoch), or None."""
    match = _STAMPED.match(physical)
    return float(int(match.group(1), 16)) if match else None


def publish(db: Database, info: DatasetInfo, *, replace_existing: bool) -> DatasetInfo:
    """Make ``info`` (rows already in ``info.physical``) the current version of ``info.name``; returns it numbered.

    With ``replace_existing`` False the registry's unique key on the name lets exactly one of several writers
    create the dataset; the others get :class:`TableExistsError` and their tables are left for the caller to drop.
    Two replaces both succeed, in some order: the last to commit is current, each version whole.
    """
    for attempt in range(_PUBLISH_TRIES):
        try:
            with db.begin(f"publish dataset {info.name!r}") as conn:
                return _publish(conn, info, replace_existing)
        except TableExistsError:
            raise
        except LightningDM8Error:
            # A unique key violated by a writer that committed first (the name, or the next version number):
            # read the registry again and decide.
            with db.connect(f"check dataset {info.name!r}") as conn:
                head = registry.head_row(conn, info.name)
            if head is not None and not replace_existing:
                raise _exists(db, info.name) from None
            if attempt == _PUBLISH_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def _exists(db: Database, name: str) -> TableExistsError:
    return TableExistsError(
        f"dataset {name!r} already exists in {db.url} (another writer published it first); pass "
        f"if_exists='replace' to overwrite it or if_exists='append' to add rows"
    )


def _publish(conn: sa.Connection, info: DatasetInfo, replace_existing: bool) -> DatasetInfo:
    head = registry.head_row(conn, info.name, lock=True)
    if head is not None and not replace_existing:
        raise TableExistsError(
            f"dataset {info.name!r} already exists (another writer published it first); pass if_exists='replace' to "
            f"overwrite it or if_exists='append' to add rows"
        )
    latest = conn.execute(
        sa.select(sa.func.max(registry.VERSIONS.c.version)).where(registry.VERSIONS.c.name == info.name)
    ).scalar()
    numbered = replace(info, version=int(latest or 0) + 1)
    if head is not None:
        numbered = replace(numbered, created_at=head.created_at)
    registry.insert_version(conn, numbered)
    registry.write_head(conn, numbered, insert=head is None)
    return numbered


def append_version(conn: sa.Connection, current: DatasetInfo, appended: DatasetInfo) -> DatasetInfo:
    """Record ``appended`` (rows added to ``current``'s physical table in this transaction) as the next version."""
    numbered = replace(appended, version=current.version + 1, physical=current.table_name,
                       lineage=current.cache_lineage)
    registry.insert_version(conn, numbered)
    registry.write_head(conn, numbered, insert=False)
    return numbered


def adopt(db: Database, name: str) -> DatasetInfo | None:
    """Give a dataset written before versions its version 1 (renaming its table); None when ``name`` is no such
    dataset. Safe to repeat and to race: whatever step a killed or concurrent adopter reached is taken from there."""
    registry.ensure_registry(db)
    target = adopted_name(name)
    with db.begin(f"adopt dataset {name!r}") as conn:
        head = registry.head_row(conn, name, lock=True)
        if head is None or head.current_version is not None:
            return registry.read_info(conn, name)
        if table_exists(conn, name) and not table_exists(conn, target) and not _is_view(conn, name):
            db.backend.rename_table(conn, name, target)
    with db.begin(f"adopt dataset {name!r}") as conn:
        head = registry.head_row(conn, name, lock=True)
        if head is None or head.current_version is not None:
            return registry.read_info(conn, name)
        legacy = registry.read_info(conn, name)
        assert legacy is not None
        info = replace(legacy, version=1, physical=target, lineage=legacy.fingerprint)
        if registry.read_version(conn, name, 1) is None:
            registry.insert_version(conn, info)
        registry.write_head(conn, info, insert=False)
    log.info("dataset %r adopted as version 1 (table %s)", name, target)
    repair_view(db, name)
    return info


def _is_view(conn: sa.Connection, name: str) -> bool:
    return name in sa.inspect(conn).get_view_names()


def repair_view(db: Database, name: str) -> bool:
    """Point view ``name`` at the current version's table; False (logged) when that cannot be done now.

    A table of that name that is not a view is never dropped here.
    """
    try:
        with db.begin(f"update the view {name!r}") as conn:
            info = registry.read_info(conn, name)
            if info is None or not info.physical:
                return False
            if table_exists(conn, name) and not _is_view(conn, name):
                log.warning("dataset %r: a table of that name that is not a view is in the way; the dataset is read "
                            "from %s", name, info.physical)
                return False
            db.backend.replace_view(conn, name, info.physical)
        return True
    except LightningDM8Error as exc:
        log.warning("dataset %r: could not update its view (the registry is still right; `lightning-dm8 gc` or the "
                    "next write repairs it): %s", name, exc)
        return False


def drop_tables(db: Database, tables: list[str]) -> list[str]:
    """Drop tables or views, each in its own transaction; returns those that could not be dropped now (logged: e.g.
    a view not yet repaired still depends on the table), which a later ``gc`` takes."""
    kept = []
    for table in dict.fromkeys(tables):
        try:
            with db.begin(f"drop table {table!r}") as conn:
                if _is_view(conn, table):
                    db.backend.drop_view(conn, table)
                else:
                    sa.Table(table, sa.MetaData()).drop(conn, checkfirst=True)
        except LightningDM8Error as exc:
            log.warning("could not drop %s now (gc will try again): %s", table, exc)
            kept.append(table)
    return kept
