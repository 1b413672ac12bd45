"""MySQL and MariaDB through mysqlclient or PyMySQL: LONGBLOB values, a bounded handshake, chunks below
``max_allowed_packet``."""

from __future__ import annotations

import logging
import weakref
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from lightning_dm8.db.backends.base import Backend
from lightning_dm8.errors import (
    AuthenticationError,
    DatabaseUnavailableError,
    LightningDM8Error,
    TableExistsError,
    TableNotFoundError,
)

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 64

# Client and server error numbers: https://mariadb.com/kb/en/mariadb-error-codes/
UNAVAILABLE = frozenset({2002, 2003, 2005, 2006, 2013, 2055, 1927, 1053})
AUTH = frozenset({1044, 1045, 1698})
NO_TABLE = frozenset({1146})
TABLE_EXISTS = frozenset({1050})
CLOSED = 0
"""PyMySQL's ``InterfaceError(0, '')``: anything asked of a connection it already saw die (a rollback after a lost
connection, above all)."""

_MIN_CHUNK_SIZE = 64 << 10
_PACKET_MARGIN = 64 << 10


def chunk_limit(max_allowed_packet: int) -> int:
    """The largest chunk that fits one MySQL packet: PyMySQL escapes binary data in the statement text, which can
    double it (NUL bytes, common in tensors, become two bytes), plus room for the rest of the statement."""
    return max(_MIN_CHUNK_SIZE, (int(max_allowed_packet) - _PACKET_MARGIN) // 2)


_SOCKETS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
"""The socket of each mysqlclient connection, noted when it connects: ``fileno()`` refuses to answer from another
thread while a query runs ("already in use from another thread"), which is when the watchdog needs it."""


def _closed_connection(exc: BaseException) -> bool:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return type(exc).__name__ == "InterfaceError" and bool(args) and args[0] == CLOSED


class MySQLBackend(Backend):
    name: ClassVar[str] = "mysql"
    title: ClassVar[str] = "MySQL/MariaDB"
    driver_module: ClassVar[str] = "pymysql"
    extra: ClassVar[str] = "mysql"
    driver_packages: ClassVar[tuple[str, ...]] = ("pymysql", "MySQLdb")
    cuts_hung_reads: ClassVar[bool] = True
    error_codes = ((UNAVAILABLE, DatabaseUnavailableError), (AUTH, AuthenticationError),
                   (NO_TABLE, TableNotFoundError), (TABLE_EXISTS, TableExistsError))

    def install_hint(self) -> str:
        """Both drivers: a ``mysql://`` URL uses mysqlclient when it is installed, else PyMySQL."""
        return ("PyMySQL (pip install 'lightning-dm8[mysql]') or the faster mysqlclient "
                "(pip install 'lightning-dm8[mysqlclient]', which builds against libmariadb-dev)")

    def configure_engine(self, engine: sa.Engine) -> None:
        """Make connect_timeout bound PyMySQL's whole handshake, not only the TCP connect.

        A server that accepts connections but never answers (hung, paused) would otherwise block a new connection
        forever. The handshake runs with ``read_timeout=connect_timeout``, lifted once connected: a long query may
        take its time (a server hanging in the middle of a read is the reader's business: it cuts such reads off at
        ``max_wait``).
        """

        @sa.event.listens_for(engine, "do_connect")
        def _bound(dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
            # Only PyMySQL's: mysqlclient keeps read_timeout for the connection's life (a query longer than it would
            # fail), and its connect_timeout already bounds the handshake (libmysqlclient MYSQL_OPT_CONNECT_TIMEOUT).
            if "connect_timeout" in cparams and dialect.driver == "pymysql":
                cparams.setdefault("read_timeout", cparams["connect_timeout"])

        @sa.event.listens_for(engine, "connect")
        def _lift(dbapi_connection: Any, _record: Any) -> None:
            if hasattr(dbapi_connection, "_read_timeout"):
                dbapi_connection._read_timeout = None
            fileno = getattr(dbapi_connection, "fileno", None)
            if callable(fileno):  # mysqlclient: asked here, since it refuses the call while another thread reads
                _SOCKETS[dbapi_connection] = int(fileno())

    def classify(self, exc: BaseException, code: int | str | None) -> type[LightningDM8Error] | None:
        if _closed_connection(exc):
            return DatabaseUnavailableError
        return super().classify(exc, code)

    def unwrap(self, exc: BaseException) -> BaseException:
        """A closed-connection error raised while handling the one that says why the connection died (e.g. 2013
        "Lost connection"): report that one."""
        if _closed_connection(exc):
            context = getattr(exc.__context__, "orig", None) or exc.__context__
            if context is not None and self.is_driver_error(context):
                return context
        return exc

    def name_problem(self, name: str) -> str | None:
        if len(name) > MAX_NAME_CHARS:
            return f"MySQL/MariaDB names hold at most {MAX_NAME_CHARS} characters; it has {len(name)}"
        if any(ord(c) > 0xFFFF for c in name):
            return "MySQL/MariaDB names cannot contain characters outside the Basic Multilingual Plane (e.g. emoji)"
        if name.endswith(" "):
            return "MySQL/MariaDB names cannot end with a space"
        return None

    def binary_type(self, fixed_size: int | None) -> sa.types.TypeEngine[Any]:
        return mysql.LONGBLOB()

    def text_type(self) -> sa.types.TypeEngine[Any]:
        return mysql.LONGTEXT(charset="utf8mb4")

    def rename_table(self, conn: sa.Connection, old: str, new: str) -> None:
        conn.exec_driver_sql(f"RENAME TABLE {self.quote(conn, old)} TO {self.quote(conn, new)}")

    def analyze_table(self, conn: sa.Connection, name: str) -> None:
        conn.exec_driver_sql(f"ANALYZE TABLE {self.quote(conn, name)}").fetchall()

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL keeps its socket here
        if sock is not None:
            return int(sock.fileno())
        return _SOCKETS.get(dbapi_connection)  # mysqlclient's, noted when it connected

    def chunk_size_limit(self, conn: sa.Connection) -> int | None:
        packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        log.debug("max_allowed_packet is %d", packet)
        return chunk_limit(packet)
