"""SQLite (the standard library's ``sqlite3``): the embedded default, one local file, no server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL

from lightning_dm8.db.backends.base import Backend, PreparedFetch
from lightning_dm8.db.blobs import ChunkOpener, read_blob_handles
from lightning_dm8.errors import DatabaseUnavailableError, LightningDM8Error, TableNotFoundError


def _local_path(url: URL) -> Path | None:
    """The file of a file database; None for in-memory ones."""
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in database or database.startswith("file:"):
        return None
    return Path(database).expanduser()


class SQLiteBackend(Backend):
    name: ClassVar[str] = "sqlite"
    title: ClassVar[str] = "SQLite"
    driver_module: ClassVar[str] = "sqlite3"
    driver_packages: ClassVar[tuple[str, ...]] = ("sqlite3",)
    prepare_data_per_node: ClassVar[bool] = True  # the file is local to each node
    pool_pre_ping: ClassVar[bool] = False
    replaces_views_in_place: ClassVar[bool] = False  # no CREATE OR REPLACE VIEW

    def connect_args(self, timeout: float) -> dict[str, Any]:
        return {"timeout": timeout}

    def configure_engine(self, engine: sa.Engine) -> None:
        """WAL mode for file databases, so that an open reader never blocks a writer.

        In the default rollback-journal mode a streaming SELECT (``write_query`` reading its source while it writes
        the dataset, or a DataLoader worker reading blocks) holds a shared lock that stops any write transaction
        larger than the page cache, until the busy timeout fails it. In-memory databases keep their own journal.
        """
        if _local_path(engine.url) is None:
            return

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            try:
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
            except Exception:  # a read-only file or medium: keep the rollback journal, reads still work
                pass

    def prepare_local(self, url: URL) -> None:
        """Create the folder of the database file (``sqlite:///runs/x/data.db``), which SQLite does not do itself."""
        path = _local_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def exists_locally(self, url: URL) -> bool:
        path = _local_path(url)
        return path is None or path.exists()

    def read_only_statements(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """SQLite has no read-only transactions; ``query_only`` refuses every write on the connection."""
        return ("PRAGMA query_only = ON",), ("PRAGMA query_only = OFF",)

    def classify(self, exc: BaseException, code: int | str | None) -> type[LightningDM8Error] | None:
        text = str(exc).lower()
        if "no such table" in text:
            return TableNotFoundError
        if "unable to open database file" in text:
            return DatabaseUnavailableError
        return None

    def advice(self, kind: type[LightningDM8Error]) -> str | None:
        if kind is DatabaseUnavailableError:
            return "check that the database file's folder exists and is writable"
        return None

    def chunk_opener(self, prepare: Callable[..., PreparedFetch], data: sa.Column[Any], driver: Any) -> ChunkOpener:
        """Incremental blob I/O reads only the pages of each slice (``blobopen``, Python >= 3.11)."""
        if not hasattr(driver, "blobopen"):
            return super().chunk_opener(prepare, data, driver)
        locate = prepare(sa.literal_column("rowid"), sa.func.length(data))
        return read_blob_handles(locate, driver, data.table.name, data.name)
