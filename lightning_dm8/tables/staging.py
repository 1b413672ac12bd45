"""Staged tables: written under a temporary name, published under the real one only when complete.

The dataset writers and the predictions writer share this, so a failed or killed writer never leaves a
half-written table under the real name. Staging tables are named ``ldm8_tmp_<time>_<random>``.

Tables other than datasets (predictions) are published through ``ldm8_tables``: one row per published name,
naming the physical table behind it. Publishing is one transaction on that row (atomic whatever the backend's DDL
does; its unique key decides between two writers creating the same name); the name itself is then made a view of
the physical table, and the previous physical table dropped. If those steps are cut short, the row is the truth and
the next publish (or ``gc``) finishes them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time

import sqlalchemy as sa

from lightning_dm8.db.engine import Database
from lightning_dm8.errors import LightningDM8Error, TableExistsError
from lightning_dm8.tables.ddl import table_exists
from lightning_dm8.tables.schema import name_type

log = logging.getLogger(__name__)

STAGING_PREFIX = "ldm8_tmp_"


def staging_name() -> str:
    """A fresh staging table name; its hex timestamp lets ``gc`` tell a killed writer's table by its age."""
    return f"{STAGING_PREFIX}{int(time.time()):08x}_{os.urandom(4).hex()}"


PUBLISHED = sa.Table(
    "ldm8_tables",
    sa.MetaData(),
    sa.Column("name", name_type(), primary_key=True),
    sa.Column("physical", sa.String(255), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


def published_table(db: Database, name: str) -> str | None:
    """The physical table behind published name ``name``, or None."""
    with db.connect(f"look up {name!r}") as conn:
        if not table_exists(conn, PUBLISHED.name):
            return None
        rows = conn.execute(sa.select(PUBLISHED).where(PUBLISHED.c.name == name)).all()
    return next((r.physical for r in rows if r.name == name), None)


def publish_staged(db: Database, staging: str, final: str, *, replace: bool) -> None:
    """Make ``final`` show the rows of the complete table ``staging``.

    Without ``replace``, a name that exists (published or not) is refused with :class:`TableExistsError`. With it,
    the caller has checked that a table already under ``final`` is one it may replace.
    """
    try:
        with db.begin("prepare ldm8_tables") as conn:
            PUBLISHED.create(conn, checkfirst=True)
    except LightningDM8Error:  # another process created it at the same moment
        pass
    with db.begin(f"publish {final!r}") as conn:
        rows = conn.execute(sa.select(PUBLISHED).where(PUBLISHED.c.name == final).with_for_update()).all()
        row = next((r for r in rows if r.name == final), None)
        if not replace and (row is not None or table_exists(conn, final)):
            raise TableExistsError(f"table {final!r} in {db.url} was created while this one was written; it is kept "
                                   f"and the new rows are not published")
        values = {"physical": staging, "updated_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)}
        if row is None:
            conn.execute(PUBLISHED.insert().values(name=final, **values))
        else:
            conn.execute(PUBLISHED.update().where(PUBLISHED.c.name == final).values(**values))
    previous = row.physical if row is not None else None
    with db.begin(f"update the view {final!r}") as conn:
        if table_exists(conn, final) and final not in sa.inspect(conn).get_view_names():
            sa.Table(final, sa.MetaData()).drop(conn)  # a table from before ldm8_tables, checked by the caller
        db.backend.replace_view(conn, final, staging)
    if previous is not None and previous != staging:
        drop_quietly(db, previous)


def drop_quietly(db: Database, name: str) -> None:
    """Drop a staging table after a failure; the failure's own error matters more than this one."""
    try:
        with db.begin(f"drop staging table {name!r}") as conn:
            sa.Table(name, sa.MetaData()).drop(conn, checkfirst=True)
    except Exception:  # a stale staging table is harmless and named ldm8_tmp_*
        log.debug("could not drop the staging table %s", name, exc_info=True)
