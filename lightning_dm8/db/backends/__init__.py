"""One module per database; :func:`backend_named` picks the one a URL needs."""

from __future__ import annotations

from lightning_dm8.db.backends.base import Backend
from lightning_dm8.db.backends.dm import DMBackend
from lightning_dm8.db.backends.mysql import MySQLBackend
from lightning_dm8.db.backends.postgresql import PostgreSQLBackend
from lightning_dm8.db.backends.sqlite import SQLiteBackend
from lightning_dm8.errors import InvalidInputError

BACKENDS: dict[str, Backend] = {b.name: b for b in (SQLiteBackend(), PostgreSQLBackend(), MySQLBackend(), DMBackend())}


def backend_named(name: str) -> Backend:
    """The backend of family ``name`` (``sqlite``, ``postgresql``, ``mysql``, ``dm``)."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise InvalidInputError(
            f"unsupported database {name!r}; lightning_dm8 supports {', '.join(sorted(BACKENDS))} "
            f"(URLs such as sqlite:///data.db, postgresql://..., mysql://..., dm://...)"
        ) from None


__all__ = ["BACKENDS", "Backend", "backend_named"]
