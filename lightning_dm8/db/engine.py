"""URL -> engine, opened lazily in the process that uses it, with driver errors mapped to the project's own.

A :class:`Database` holds only the URL until a connection is needed, so the same object can be pickled into
DataLoader workers and DDP processes: each process (after fork or spawn) opens its own engine.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from lightning_dm8.db.driver_errors import translate
from lightning_dm8.db.urls import BACKEND_EXTRAS, backend_of, mask_url, parse_url
from lightning_dm8.errors import LightningDM8Error, MissingDriverError

_DRIVER_MODULES = {"dm": "dmPython", "postgresql": "psycopg", "mysql": "pymysql", "sqlite": "sqlite3"}


def _connect_args(backend: str, timeout: float) -> dict[str, Any]:
    """Driver keywords that every connection gets: timeouts, and UTF-8 plus English messages on DM8."""
    seconds = max(1, int(timeout))
    if backend == "dm":
        return {"local_code": 1, "login_timeout": seconds, "lang_id": 1}
    if backend in ("postgresql", "mysql"):
        return {"connect_timeout": seconds}
    return {"timeout": timeout}


def _use_wal(engine: sa.Engine) -> None:
    """Put a SQLite file database in WAL mode, so that an open reader never blocks a writer.

    In the default rollback-journal mode a streaming SELECT (``write_query`` reading its source while it writes the
    dataset, or a DataLoader worker reading blocks) holds a shared lock that stops any write transaction larger than
    the page cache, until the busy timeout fails it. In-memory databases keep their own journal.
    """
    database = engine.url.database or ""
    if database in ("", ":memory:") or "mode=memory" in database:
        return

    @sa.event.listens_for(engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        except Exception:  # a read-only file or medium: keep the rollback journal, reads still work
            pass


def _bound_mysql_handshake(engine: sa.Engine) -> None:
    """Make connect_timeout bound PyMySQL's whole handshake, not only the TCP connect.

    A server that accepts connections but never answers (hung, paused) would otherwise block a new connection
    forever. The handshake runs with ``read_timeout=connect_timeout``, lifted once connected: a long query may take
    its time (a server hanging in the middle of a read is the reader's business: ``TableReader`` cuts such reads off
    at ``max_wait``).
    """

    @sa.event.listens_for(engine, "do_connect")
    def _bound(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        if "connect_timeout" in cparams:
            cparams.setdefault("read_timeout", cparams["connect_timeout"])

    @sa.event.listens_for(engine, "connect")
    def _lift(dbapi_connection: Any, _record: Any) -> None:
        if hasattr(dbapi_connection, "_read_timeout"):
            dbapi_connection._read_timeout = None


DM_UNQUOTED_KEYWORDS = frozenset({"rowid", "year"})
"""Names DM8 reads as keywords or pseudo-columns that dmSQLAlchemy (2.0.17) leaves unquoted: ``rowid`` is missing
from its reserved words, ``year`` is glued to the word before it in the list. Unquoted, a column ``rowid`` would
be read back as DM8's physical row address instead of the stored values."""


def _quote_dm_pseudo_columns(dialect: sa.Dialect) -> None:
    """Make this engine's dmSQLAlchemy preparer quote :data:`DM_UNQUOTED_KEYWORDS` like any reserved word.

    Done on the dialect rather than per table, so DDL, DML, ``has_table`` (name normalisation) and hand-built
    statements (``identifier_preparer.quote``) all agree on the quoted, case-preserved name.
    """
    preparer = dialect.identifier_preparer
    preparer.reserved_words = set(preparer.reserved_words) | DM_UNQUOTED_KEYWORDS  # before anything is quoted


class Database:
    """A database named by a SQLAlchemy URL, connected lazily and per process.

    Args:
        url: ``sqlite:///path.db``, ``postgresql+psycopg://user@host/db``, ``mysql+pymysql://user@host/db``,
            ``dm+dmPython://SYSDBA@host:5236`` (or a bare ``dm://``). A missing password is read from the
            environment variable ``LIGHTNING_DM8_PASSWORD``.
        connect_timeout: seconds to wait for a server before failing with a clear error.
    """

    def __init__(self, url: str | URL, *, connect_timeout: float = 30.0) -> None:
        self._url = parse_url(url)
        self.backend = backend_of(self._url)
        self.connect_timeout = connect_timeout
        self._engine: sa.Engine | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The URL with the password masked: safe to print."""
        return mask_url(self._url)

    @property
    def sa_url(self) -> URL:
        """The full URL, password included: only for opening connections."""
        return self._url

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_engine=None, _pid=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def engine(self) -> sa.Engine:
        """This process's engine, created on first use (and again after a fork)."""
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    if self._engine is not None:
                        # Inherited through fork: forget the parent's pooled connections without closing them,
                        # which would end the parent's sessions on the server.
                        self._engine.dispose(close=False)
                    self._engine = self._create_engine()
                    self._pid = os.getpid()
        return self._engine

    @property
    def dialect(self) -> sa.Dialect:
        """The SQLAlchemy dialect that renders this database's SQL."""
        return self.engine.dialect

    def _create_engine(self) -> sa.Engine:
        try:
            engine = sa.create_engine(
                self._url,
                connect_args=_connect_args(self.backend, self.connect_timeout),
                pool_pre_ping=self.backend != "sqlite",
            )
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise self._missing_driver(exc) from exc
        if self.backend == "sqlite":
            _use_wal(engine)
        if self.backend == "mysql":
            _bound_mysql_handshake(engine)
        if self.backend == "dm":
            _quote_dm_pseudo_columns(engine.dialect)
        return engine

    def _missing_driver(self, exc: BaseException) -> MissingDriverError:
        extra = BACKEND_EXTRAS.get(self.backend, "")
        hint = f"pip install 'lightning-dm8[{extra}]'" if extra else "install the driver named above"
        module = _DRIVER_MODULES.get(self.backend, self._url.drivername)
        missing = getattr(exc, "name", None)
        if missing and missing != module:
            # The URL names another driver than the supported one: installing the extra alone would not help.
            return MissingDriverError(
                f"The driver for {self.url} is not installed ({type(exc).__name__}: {exc}); install {missing}, or use "
                f"the supported driver {module} ({hint}) by writing the URL as {self.backend}://..."
            )
        return MissingDriverError(
            f"The driver for {self.url} is not installed ({type(exc).__name__}: {exc}); "
            f"the {self.backend} backend needs {module}: {hint}."
        )

    def dispose(self) -> None:
        """Close this process's pooled connections (no-op when none were opened here)."""
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = None

    @contextmanager
    def errors(self, where: str) -> Iterator[None]:
        """Translate driver exceptions raised inside the block into the project's exceptions."""
        try:
            yield
        except LightningDM8Error:
            raise
        except sa.exc.DBAPIError as exc:
            raise translate(self.backend, exc, f"{where} on {self.url}") from exc
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("dmPython", "psycopg", "pymysql", "sqlite3", "MySQLdb"):
                raise translate(self.backend, exc, f"{where} on {self.url}") from exc
            raise

    @contextmanager
    def connect(self, where: str = "query") -> Iterator[sa.Connection]:
        """A SQLAlchemy connection; the caller commits (``conn.commit()``) or it is rolled back."""
        with self.errors(where), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def begin(self, where: str = "write") -> Iterator[sa.Connection]:
        """A connection inside one transaction: committed when the block ends, rolled back if it raises."""
        with self.errors(where), self.engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        """Open a connection and run a trivial query: raises the project's error if the server cannot be used."""
        with self.connect("connect") as conn:
            conn.execute(sa.select(sa.literal(1)))
