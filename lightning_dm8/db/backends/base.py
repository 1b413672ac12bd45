"""The backend seam: everything one database does differently, behind one small interface.

Each supported database has one module beside this one (``sqlite``, ``postgresql``, ``mysql``, ``dm``) holding a
:class:`Backend` subclass. Code outside ``db/`` asks ``db.backend`` (a :class:`Backend`) instead of comparing
dialect names, so fixing or adding a database touches one module.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL

from lightning_dm8.db.blobs import ChunkOpener, read_whole
from lightning_dm8.errors import LightningDM8Error

CodeTable = Sequence[tuple[frozenset[int] | frozenset[str], type[LightningDM8Error]]]
"""Driver error codes -> the project's exception, first match wins."""

PreparedFetch = Callable[..., Any]
"""A compiled chunk query: called with keyword parameters, returns one row or None."""


def bind(compiled: sa.engine.Compiled, params: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
    """Parameters of ``compiled`` in the driver's paramstyle, for statements run on a raw DB-API cursor."""
    if getattr(compiled, "positional", False):
        return tuple(params[name] for name in getattr(compiled, "positiontup", None) or ())
    return params


class Backend:
    """Defaults shared by the backends; each module overrides what its database does differently."""

    name: ClassVar[str] = ""
    """The backend family: ``sqlite``, ``postgresql``, ``mysql`` (MariaDB too) or ``dm``."""
    title: ClassVar[str] = ""
    """How messages name the database."""
    driver_module: ClassVar[str] = ""
    """The supported DB-API driver's import name."""
    extra: ClassVar[str] = ""
    """The pip extra that installs the driver (empty: none needed)."""
    driver_packages: ClassVar[tuple[str, ...]] = ()
    """Top-level packages of the supported drivers: their exceptions are translated into the project's errors, and
    a missing one is installed by :meth:`install_hint`."""
    prepare_data_per_node: ClassVar[bool] = False
    """Whether Lightning's ``prepare_data`` runs once per node (a local file) rather than once in all."""
    cuts_hung_reads: ClassVar[bool] = False
    """Whether :meth:`sever` can end a read blocked on a silent server."""
    pool_pre_ping: ClassVar[bool] = True
    max_name_bytes: ClassVar[int | None] = None
    """The longest table name the server keeps whole, in bytes of UTF-8 (None: no limit to check)."""
    replaces_views_in_place: ClassVar[bool] = True
    """Whether ``CREATE OR REPLACE VIEW`` can repoint a view at a table of other columns."""
    error_codes: ClassVar[CodeTable] = ()

    # -- connecting ------------------------------------------------------------------------------------------------

    def install_hint(self) -> str:
        """The supported driver and how to install it, for the error raised when it is missing."""
        return f"{self.driver_module} (pip install 'lightning-dm8[{self.extra}]')" if self.extra else self.driver_module

    def connect_args(self, timeout: float) -> dict[str, Any]:
        """Driver keywords every connection gets (timeouts above all)."""
        return {"connect_timeout": max(1, int(timeout))}

    def configure_engine(self, engine: sa.Engine) -> None:
        """Engine hooks this database needs (pragmas, handshake bounds, quoting rules)."""

    def bound_pre_ping(self, engine: sa.Engine, seconds: float) -> None:
        """Cut SQLAlchemy's pre-ping of a pooled connection off after ``seconds`` where reads can be cut.

        On a server that stopped answering (paused, hung) the ping would otherwise wait forever, before any reader's
        watchdog runs. The cut connection fails like a lost one, which the pool reads as a disconnect: it opens a
        new connection, bounded by the connect timeout, and the caller gets a clear error.
        """
        if not self.cuts_hung_reads:
            return
        dialect = engine.dialect
        ping = dialect.do_ping

        def bounded_ping(dbapi_connection: Any) -> bool:
            watchdog = threading.Timer(seconds, self.sever, (dbapi_connection,))
            watchdog.daemon = True
            watchdog.start()
            try:
                return bool(ping(dbapi_connection))
            finally:
                watchdog.cancel()

        dialect.do_ping = bounded_ping  # type: ignore[method-assign]  # this engine's dialect only

    def prepare_local(self, url: URL) -> None:
        """Create whatever must exist on this machine before a database can be created at ``url``."""

    def exists_locally(self, url: URL) -> bool:
        """False when ``url`` names a local database that does not exist (read-only commands must not create it)."""
        return True

    # -- errors ----------------------------------------------------------------------------------------------------

    def is_driver_error(self, exc: BaseException) -> bool:
        return type(exc).__module__.split(".")[0] in self.driver_packages

    def classify(self, exc: BaseException, code: int | str | None) -> type[LightningDM8Error] | None:
        """The project's exception for a driver exception, or None to fall back to ``DatabaseError``."""
        for codes, kind in self.error_codes:
            if code in codes:
                return kind
        return None

    def unwrap(self, exc: BaseException) -> BaseException:
        """The driver exception that says what went wrong (some drivers raise a second one while cleaning up)."""
        return exc

    def advice(self, kind: type[LightningDM8Error]) -> str | None:
        """Backend-specific advice for ``kind``, or None for the general one."""
        return None

    def read_only_statements(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Statements that make the connection's next transaction read-only, and those that undo it."""
        return ("SET TRANSACTION READ ONLY",), ()

    # -- identifiers and types -------------------------------------------------------------------------------------

    def name_problem(self, name: str) -> str | None:
        """Why ``name`` cannot be a table name here, beyond the rules every backend shares; None when it can."""
        size = len(name.encode("utf-8"))
        if self.max_name_bytes is not None and size > self.max_name_bytes:
            return f"{self.title} names hold at most {self.max_name_bytes} bytes of UTF-8; it has {size}"
        return None

    def binary_type(self, fixed_size: int | None) -> sa.types.TypeEngine[Any]:
        """The column type for binary values of ``fixed_size`` bytes each (None: sizes vary)."""
        return sa.LargeBinary()

    def text_type(self) -> sa.types.TypeEngine[Any]:
        return sa.Text()

    def find_column(self, dialect: sa.Dialect, name: str, columns: Sequence[str]) -> str | None:
        """The column of a query result (``columns``, as the driver names them) that ``name`` means to this server,
        or None. Exact by default; a server that folds or ignores the case of names matches as it does."""
        return name if name in columns else None

    # -- DDL -------------------------------------------------------------------------------------------------------

    def quote(self, conn: sa.Connection, name: str) -> str:
        return conn.dialect.identifier_preparer.quote(name)

    def rename_table(self, conn: sa.Connection, old: str, new: str) -> None:
        conn.exec_driver_sql(f"ALTER TABLE {self.quote(conn, old)} RENAME TO {self.quote(conn, new)}")

    def replace_view(self, conn: sa.Connection, name: str, table: str) -> None:
        """Make view ``name`` show every row of ``table`` (creating it, or replacing what it showed); where that
        takes a drop and a create, both run in the caller's transaction."""
        create = "CREATE OR REPLACE VIEW" if self.replaces_views_in_place else "CREATE VIEW"
        if not self.replaces_views_in_place:
            self.drop_view(conn, name)
        conn.exec_driver_sql(f"{create} {self.quote(conn, name)} AS SELECT * FROM {self.quote(conn, table)}")

    def drop_view(self, conn: sa.Connection, name: str) -> None:
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {self.quote(conn, name)}")

    def create_table(self, conn: sa.Connection, table: sa.Table, *, checkfirst: bool = False) -> None:
        """Create ``table``; a backend may first fit its storage to the server (DM8: row length by page size,
        clustered ``row_id`` key)."""
        table.create(conn, checkfirst=checkfirst)

    def tune_binary_column(self, conn: sa.Connection, table: str, column: str, fixed_size: int | None) -> None:
        """Column storage for a binary column just created (e.g. in-row versus out-of-line)."""

    def tune_chunk_table(self, table: sa.Table) -> None:
        """Storage hooks for a checkpoint chunk table, attached before it is created."""

    def analyze_table(self, conn: sa.Connection, name: str) -> None:
        """Refresh the planner's statistics of a freshly written table."""

    # -- rows ------------------------------------------------------------------------------------------------------

    def insert_rows(self, conn: sa.Connection, table: sa.Table, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (tuples in the table's column order) inside the connection's open transaction."""
        if not rows:
            return
        compiled = table.insert().compile(dialect=conn.dialect)
        names = [c.name for c in table.columns]
        cursor = conn.connection.cursor()
        try:
            bound = bind(compiled, {name: index for index, name in enumerate(names)})
            if isinstance(bound, tuple):  # positional paramstyle: the positions of the columns, in statement order
                params: list[Any] = [tuple(row[i] for i in bound) for row in rows]
            else:
                params = [dict(zip(names, row, strict=True)) for row in rows]
            cursor.executemany(str(compiled), params)
        finally:
            cursor.close()

    def raw_cursor(self, dbapi_connection: Any) -> Any:
        """A DB-API cursor that returns binary values as bytes."""
        return dbapi_connection.cursor()

    def sever(self, dbapi_connection: Any) -> None:
        """End a read blocked on a server that stopped answering (shut the socket down under the driver)."""
        fd = self.socket_fd(dbapi_connection)
        if fd is None or fd < 0:
            return
        try:
            with socket.socket(fileno=os.dup(fd)) as dup:
                dup.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed: the read has ended on its own
            pass

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        """The socket under a driver connection, or None when the driver exposes none."""
        return None

    # -- checkpoints -----------------------------------------------------------------------------------------------

    def chunk_size_limit(self, conn: sa.Connection) -> int | None:
        """The largest checkpoint chunk one statement can carry on this server, or None for no limit."""
        return None

    def chunk_opener(self, prepare: Callable[..., PreparedFetch], data: sa.Column[Any], driver: Any) -> ChunkOpener:
        """How checkpoint chunks are read back: ``prepare(*columns)`` compiles a query of ``columns`` for one chunk."""
        return read_whole(prepare(data))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
