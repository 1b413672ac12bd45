"""The one place a URL given by a caller becomes a :class:`Database` (a Database given stays itself)."""

from __future__ import annotations

from sqlalchemy.engine import URL

from lightning_dm8.db.engine import Database


def as_database(url: str | URL | Database) -> Database:
    """``url`` as a :class:`Database`: the same object when it is one already (its engine is shared), else a new one."""
    return url if isinstance(url, Database) else Database(url)
