"""URL -> engine, opened lazily in the process that uses it, with driver errors mapped to the project's own.

A :class:`Database` holds only the URL until a connection is needed, so the same object can be pickled into
DataLoader workers and DDP processes: each process (after fork or spawn) opens its own engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL

from lightning_dm8.db.backends import Backend, backend_named
from lightning_dm8.db.driver_errors import translate
from lightning_dm8.db.process_local import ProcessLocal
from lightning_dm8.db.urls import backend_of, mask_url, parse_url
from lightning_dm8.errors import LightningDM8Error, MissingDriverError


def _dispose(engine: sa.Engine) -> None:
    engine.dispose()


def _forget_pool(engine: sa.Engine) -> None:
    """Drop an engine inherited through fork without closing the parent's connections, which would end the
    parent's sessions on the server."""
    engine.dispose(close=False)


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
        self.backend: Backend = backend_named(backend_of(self._url))
        self.connect_timeout = connect_timeout
        self._engine: ProcessLocal[sa.Engine] = ProcessLocal(self._create_engine, close=_dispose, forget=_forget_pool)

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

    @property
    def engine(self) -> sa.Engine:
        """This process's engine, created on first use (and again after a fork)."""
        return self._engine.get()

    @property
    def dialect(self) -> sa.Dialect:
        """The SQLAlchemy dialect that renders this database's SQL."""
        return self.engine.dialect

    def _create_engine(self) -> sa.Engine:
        try:
            engine = sa.create_engine(
                self._url,
                connect_args=self.backend.connect_args(self.connect_timeout),
                pool_pre_ping=self.backend.pool_pre_ping,
            )
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise self._missing_driver(exc) from exc
        self.backend.configure_engine(engine)
        self.backend.bound_pre_ping(engine, self.connect_timeout)
        return engine

    def _missing_driver(self, exc: BaseException) -> MissingDriverError:
        backend = self.backend
        missing = getattr(exc, "name", None)
        if missing and missing not in backend.driver_packages:
            # The URL names another driver than the supported ones: installing the extra alone would not help.
            return MissingDriverError(
                f"The driver for {self.url} is not installed ({type(exc).__name__}: {exc}); install {missing}, or "
                f"write the URL as {backend.name}://... to use the supported {backend.install_hint()}"
            )
        return MissingDriverError(
            f"The driver for {self.url} is not installed ({type(exc).__name__}: {exc}); "
            f"the {backend.title} backend needs {backend.install_hint()}."
        )

    def dispose(self) -> None:
        """Close this process's pooled connections (no-op when none were opened here)."""
        self._engine.close()

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
            if self.backend.is_driver_error(exc):
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
