"""Dameng DM8 through dmPython and the vendor's dmSQLAlchemy dialect.

What DM8 does differently, each with its source:

* **Rows live in half a page.** Without ``USING LONG ROW`` a record must fit in about half a page: 1,900 bytes at
  4 KB pages, 3,900 at 8 KB (the default), 8,000 at 16 KB, 16,000 at 32 KB (eco.dameng.com training article
  "达梦数据库关键初始化参数指南", 1.2; the DM8 SQL manual, "DM_SQL 所支持的数据类型", table 1.4.1, gives the
  same figures up to 16 KB, and "每条记录总长度不能大于页面大小的一半"); a longer row fails at INSERT with
  -2665 "记录超长". LOB columns (BLOB, TEXT) do not count ("大字段不参与上述计算"). ``STORAGE(USING LONG ROW)``
  lifts the limit (DM8 FAQ "SQL 语法": "当指定了 USING LONG ROW 存储选项,则每条记录的长度不受数据库页面大小
  限制"). The page size is fixed when the database is created and is asked of the server once per engine
  (``SELECT PAGE()``, as Dameng's own dm-mcp-server does in ``src/dm_mcp/domain/mcp/providers/sql/
  inspection_sql.py``). The whole record counts, not each column: a record table of several ``VARBINARY(n)``
  columns, each within VARBINARY's 8,188 bytes, still needs long rows when their sum passes the limit. See
  :func:`plan_rows`.
* **Types** come from dmSQLAlchemy 2.0.17 (``base.py``, ``DMTypeCompiler``): BIGINT, FLOAT (a double: "FLOAT 类型:
  二进制精度的浮点数,精度最大不超过 53", DM8 SQL manual, 数值数据类型, as quoted at blog.csdn.net/weixin_43246439/
  article/details/142488710), ``VARBINARY(n)``, BLOB, TEXT, and SMALLINT for a Boolean (``visit_boolean``).
  dmPython returns SMALLINT values as ``int`` (DamengDB/dmPython ``var.c``, ``dmVar_TypeBySQLType``:
  ``DSQL_SMALLINT`` -> ``vt_Integer``) and binds a Python ``bool`` as 0 or 1 (``vNumber.c``,
  ``NumberVar_SetValueFromBoolean``), so a bool column reads back through ``np.asarray(values, dtype=bool)``.
* **Clustered keys.** With ``PK_WITH_CLUSTER=0`` (the default) a primary key is a secondary index and the rows are
  ordered by ROWID; ``CLUSTER PRIMARY KEY`` makes the key the table's own B-tree (DM8 DBA manual, "指定表的聚集索引").
  Tables keyed by ``row_id`` alone (dataset and predictions tables, read in ``row_id`` ranges) are created so.
* **Statistics** are gathered with ``DBMS_STATS.GATHER_TABLE_STATS(owner, table, NULL, 100, TRUE)``, the call
  Dameng's dm-mcp-server makes (``src/dm_mcp/domain/mcp/providers/sql/data_sql.py``).
* **DDL commits itself** and the open transaction (``DDL_AUTO_COMMIT=1``, the default: DM8 SQL manual, "事务管理").
  Nothing here relies on a DDL statement being rolled back.
* **Bounded waits.** ``login_timeout`` bounds the login (dmPython ``Connection.c``: keyword list and
  ``DSQL_ATTR_LOGIN_TIMEOUT``); ``connection_timeout`` is a per-statement execution timeout ("执行超时时间",
  https://eco.dameng.com/document/dm/zh-cn/pm/dmpython-interface.html) and stays 0, or a long legitimate statement
  would fail. A dmPython connection exposes no socket, so the socket it opened is found when it connects (Linux:
  ``/proc/self/fd``) and :meth:`DMBackend.sever` shuts it down: the blocked driver call then returns -70019. The
  reader's watchdog uses it for reads; the pool's pre-ping of an idle connection is cut the same way after the
  connect timeout (``Backend.bound_pre_ping``).
* **Names** fold to upper case unless quoted (``CASE_SENSITIVE=Y``), or keep their case and compare without it
  (``=N``): :meth:`DMBackend.find_column` matches query columns accordingly.
* **A missing password** is refused before dmPython is called, naming ``LIGHTNING_DM8_PASSWORD`` (dmPython's own
  "password cannot be empty" is lost by dmSQLAlchemy).
* **Messages follow the client locale**, so errors are classified by dmPython's numeric code only (``lang_id=1``
  asks for English messages all the same).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import sqlalchemy as sa

from lightning_dm8.db.backends.base import Backend
from lightning_dm8.db.urls import PASSWORD_ENV
from lightning_dm8.errors import (
    AuthenticationError,
    ConstraintViolationError,
    DatabaseUnavailableError,
    LightningDM8Error,
    TableNotFoundError,
)

MAX_NAME_BYTES = 128

VARBINARY_LIMIT = 8188
"""The longest VARBINARY DM8 declares (DM8 SQL manual: "可以指定一个不超过 8188 的正整数"); longer values go to BLOB."""

# -- error codes (dmPython ``DmError.code``) ---------------------------------------------------------------------------

UNAVAILABLE = frozenset({
    -70028,  # "Create SOCKET connection failure": dmSQLAlchemy 2.0.17 dmpython.py is_disconnect; a closed port.
    -70019,  # "Network communication failure": dmSQLAlchemy 2.0.17 dmpython.py is_disconnect; seen from dmPython
             # 2.6.1 when a peer closes, resets, sends garbage or stays silent past login_timeout, and when the
             # socket is shut down under a blocked call (tests/db/test_dm8_offline.py).
    -70025,  # dmSQLAlchemy 2.0.17 dmpython.py is_disconnect (no message known).
    -6010,   # dmSQLAlchemy 2.0.17 dmpython.py is_disconnect (no message known).
})
AUTH = frozenset({
    -2501,  # UNSOURCED: login refused (wrong user name or password); no first-party listing found.
})
NO_TABLE = frozenset({
    -2106,  # THIRD-PARTY: "无效的表或视图名" ("invalid table or view name") in public logs; no first-party list.
})
INTEGRITY = frozenset(range(-6612, -6600))
"""-6601..-6612: the codes dmPython raises as ``IntegrityError`` (DamengDB/dmPython ``Environment.c``,
``Environment_RaiseError``): unique and primary keys above all, when two writers insert the same key."""

UNQUOTED_KEYWORDS = frozenset({"rowid", "year"})
"""Names DM8 reads as keywords or pseudo-columns that dmSQLAlchemy (2.0.17) leaves unquoted: ``rowid`` is missing
from its reserved words, ``year`` is glued to the word before it in the list. Unquoted, a column ``rowid`` would
be read back as DM8's physical row address instead of the stored values. The rest of its list (``extensions.py``
``RESERVED_WORDS``: LEVEL, COMMENT, DATE, SIZE, RAW, USER, UID, ROWNUM, VALUE...) it quotes itself, as it quotes
mixed-case and non-ASCII names; a name on no list (``type``) stays plain, stored upper case."""

# -- rows and pages ----------------------------------------------------------------------------------------------------

IN_ROW_LIMITS = {4096: 1900, 8192: 3900, 16384: 8000, 32768: 16000}
"""Bytes a record may hold in-row, by page size (eco.dameng.com, "达梦数据库关键初始化参数指南" 1.2; DM8 SQL manual,
table 1.4.1, up to 16 KB pages)."""
ROW_OVERHEAD = 20
"""Bytes every record spends on ROWID, TRXID and NULL flags (eco.dameng.com community article "记录超长"问题分析:
3,879 characters fit a VARCHAR at 8 KB pages, 3,880 do not)."""
LENGTH_PREFIX = 2
"""Bytes a variable-length value longer than 128 bytes spends on its length (same article)."""
ROW_MARGIN = 64
"""Slack kept below the limit before a table is trusted to fit in-row."""
CHAR_BYTES = 4
"""Bytes a character of a ``VARCHAR(n CHAR)`` may take in UTF-8."""


LONG_ROW_INFO = "ldm8_dm_long_row"
CLUSTER_INFO = "ldm8_dm_cluster_pk"
ROW_ID = "row_id"


@dataclass(frozen=True)
class RowPlan:
    """How a table is stored on a DM8 server of ``page_size`` bytes per page."""

    page_size: int
    limit: int
    """Bytes one record may hold in-row."""
    row_bytes: int
    """The most a record of the table can take in-row (declared widths plus overheads; LOB columns excluded)."""
    long_row: bool
    """``STORAGE(USING LONG ROW)``: a record may be longer than :attr:`limit`."""
    clustered: bool
    """``CLUSTER PRIMARY KEY``: the table is keyed by ``row_id`` alone and read in ``row_id`` ranges."""


def column_bytes(column_type: sa.types.TypeEngine[Any]) -> int:
    """The most bytes a value of ``column_type`` takes in a DM8 record."""
    if isinstance(column_type, (sa.Text, sa.LargeBinary)):  # TEXT, CLOB, BLOB: out of the row's count
        return 0
    if isinstance(column_type, sa.String):
        return (column_type.length or VARBINARY_LIMIT) * CHAR_BYTES + LENGTH_PREFIX
    if isinstance(column_type, sa.types._Binary):  # VARBINARY, BINARY
        return (column_type.length or VARBINARY_LIMIT) + LENGTH_PREFIX
    if isinstance(column_type, (sa.SmallInteger, sa.Boolean)):  # dmSQLAlchemy compiles Boolean to SMALLINT
        return 2
    if isinstance(column_type, sa.BigInteger):
        return 8
    if isinstance(column_type, sa.Integer):
        return 4
    return 8  # FLOAT (a double), DATETIME, and anything else small and fixed


def plan_rows(table: sa.Table, page_size: int) -> RowPlan:
    """Storage for ``table``: in-row when its widest record fits with margin, else long rows (without them such a
    record would fail at INSERT with -2665 "记录超长": Dameng E学, "达梦报错超长记录如何分析").

    The widest record is the sum of every column's declared width ("每条记录总长度不能大于页面大小的一半": the limit
    is on the record, not on a column), so a record table's sized binary columns are planned together.

    Long rows rather than BLOB, for the whole table and for each of its columns: a VARBINARY value comes back inside
    the result set, while dmPython reads every BLOB cell with two more calls (``dpi_lob_get_length`` and
    ``dpi_lob_read``: DamengDB/dmPython ``vLob.c`` ``vLob_GetValue`` and ``exLob.c``); tests/dm8model counts the
    round trips of both. A column becomes a BLOB only when its values vary in size or pass VARBINARY's 8,188 bytes
    (:meth:`DMBackend.binary_type`), never to make the rest of the record fit.
    """
    limit = IN_ROW_LIMITS.get(page_size, min(IN_ROW_LIMITS.values()))
    row_bytes = ROW_OVERHEAD + sum(column_bytes(c.type) for c in table.columns)
    keys = [c.name for c in table.primary_key.columns]
    return RowPlan(
        page_size=page_size,
        limit=limit,
        row_bytes=row_bytes,
        long_row=row_bytes + ROW_MARGIN > limit,
        clustered=keys == [ROW_ID],
    )


def plan_storage(table: sa.Table, page_size: int) -> RowPlan:
    """Plan ``table`` (:func:`plan_rows`) and mark it so that its CREATE TABLE carries the plan's clauses."""
    plan = plan_rows(table, page_size)
    table.info[LONG_ROW_INFO] = plan.long_row
    table.info[CLUSTER_INFO] = plan.clustered
    return plan


def _storage_compiler(base: type[Any]) -> type[Any]:
    """dmSQLAlchemy's DDL compiler, adding what its table options cannot say: ``CLUSTER PRIMARY KEY`` and
    ``STORAGE(USING LONG ROW)``, for tables :meth:`DMBackend.create_table` marked."""

    class StorageDDLCompiler(base):  # a subclass of the vendor's compiler
        def post_create_table(self, table: sa.Table) -> str:
            text = str(super().post_create_table(table))
            if table.info.get(LONG_ROW_INFO):
                text += "\n STORAGE(USING LONG ROW)"
            return text

        def visit_primary_key_constraint(self, constraint: sa.PrimaryKeyConstraint, **kw: Any) -> str:
            text = str(super().visit_primary_key_constraint(constraint, **kw))
            if constraint.table.info.get(CLUSTER_INFO):
                text = text.replace("PRIMARY KEY", "CLUSTER PRIMARY KEY", 1)
            return text

    return StorageDDLCompiler


# -- the socket under a dmPython connection ----------------------------------------------------------------------------

_FD_DIR = "/proc/self/fd"


def _socket_fds() -> dict[int, str]:
    """This process's socket descriptors and their inode links (``socket:[123]``)."""
    found: dict[int, str] = {}
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return found
    for name in names:
        try:
            link = os.readlink(f"{_FD_DIR}/{name}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:"):
            found[int(name)] = link
    return found


def peer_port(fd: int) -> int | None:
    """The remote TCP port of socket ``fd``, or None (not connected, not TCP)."""
    try:
        with socket.socket(fileno=os.dup(fd)) as dup:
            peer = dup.getpeername()
    except OSError:
        return None
    return peer[1] if isinstance(peer, tuple) and len(peer) >= 2 else None


def sockets_to(port: int) -> list[int]:
    """This process's TCP sockets connected to remote ``port``."""
    return [fd for fd in _socket_fds() if peer_port(fd) == port]


class ConnectionSockets:
    """The socket each dmPython connection of this process reads, found when it connects (Linux only).

    Connects run one at a time, so the one new socket to the server's port is this connection's. The inode is kept
    with the descriptor: a descriptor closed and reused for something else is never shut down.
    """

    available: ClassVar[bool] = sys.platform.startswith("linux") and os.path.isdir(_FD_DIR)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_connection: dict[int, tuple[int, str]] = {}

    def connect(self, open_connection: Callable[[], Any], port: int) -> Any:
        if not self.available:
            return open_connection()
        with self._lock:
            before = _socket_fds()
            connection = open_connection()
            new = [(fd, link) for fd, link in _socket_fds().items() if before.get(fd) != link]
            mine = [(fd, link) for fd, link in new if peer_port(fd) == port]
            if len(mine) == 1:
                self._by_connection[id(connection)] = mine[0]
        return connection

    def fd(self, connection: Any) -> int | None:
        entry = self._by_connection.get(id(connection))
        if entry is None:
            return None
        fd, link = entry
        try:
            still = os.readlink(f"{_FD_DIR}/{fd}") == link
        except OSError:
            still = False
        return fd if still else None

    def forget(self, connection: Any) -> None:
        self._by_connection.pop(id(connection), None)


SOCKETS = ConnectionSockets()

_PAGE_SIZES: weakref.WeakKeyDictionary[sa.Dialect, int] = weakref.WeakKeyDictionary()
"""Each engine's page size (one dialect per engine), kept out of the backend object, which travels in pickles."""


class _DriverMessage(Exception):
    """A dmPython error given as a bare string (``NotSupportedError("...")``), which dmSQLAlchemy wraps in a
    ``DBAPIError`` with no original exception (dmSQLAlchemy 2.0.17 ``dmpython.py``, ``DMDialect_dmPython.connect``)."""


class DMBackend(Backend):
    name: ClassVar[str] = "dm"
    max_name_bytes: ClassVar[int | None] = MAX_NAME_BYTES
    title: ClassVar[str] = "DM8"
    driver_module: ClassVar[str] = "dmPython"
    extra: ClassVar[str] = "dm8"
    driver_packages: ClassVar[tuple[str, ...]] = ("dmPython",)
    cuts_hung_reads: ClassVar[bool] = ConnectionSockets.available
    error_codes = ((UNAVAILABLE, DatabaseUnavailableError), (AUTH, AuthenticationError), (NO_TABLE, TableNotFoundError),
                   (INTEGRITY, ConstraintViolationError))

    # -- connecting ------------------------------------------------------------------------------------------------

    def connect_args(self, timeout: float) -> dict[str, Any]:
        """UTF-8 (``local_code=1``), English messages (``lang_id=1``) whatever the client's locale, and the login
        bounded by ``timeout`` (``login_timeout``, whole seconds; 0 would mean no bound)."""
        return {"local_code": 1, "login_timeout": max(1, int(timeout)), "lang_id": 1}

    def configure_engine(self, engine: sa.Engine) -> None:
        """Quote :data:`UNQUOTED_KEYWORDS`, emit DM8's storage clauses, check the password, and note each
        connection's socket.

        Quoting is done on the dialect rather than per table, so DDL, DML, ``has_table`` (name normalisation) and
        hand-built statements (``identifier_preparer.quote``) all agree on the quoted, case-preserved name.
        """
        dialect = engine.dialect
        preparer = dialect.identifier_preparer
        preparer.reserved_words = set(preparer.reserved_words) | UNQUOTED_KEYWORDS  # before anything is quoted
        dialect.ddl_compiler = _storage_compiler(dialect.ddl_compiler)

        @sa.event.listens_for(engine, "do_connect")
        def _connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
            if not cparams.get("password"):
                # dmPython would say only "password cannot be empty", which dmSQLAlchemy then loses.
                raise AuthenticationError(
                    f"no password for DM8 user {cparams.get('user', 'SYSDBA')!r} at {cparams.get('host')}:"
                    f"{cparams.get('port')}: set the environment variable {PASSWORD_ENV} (or give it in the URL)"
                )
            port = int(cparams.get("port") or 5236)
            return SOCKETS.connect(lambda: dialect.connect(*cargs, **cparams), port)

        @sa.event.listens_for(engine, "close")
        def _closed(dbapi_connection: Any, _record: Any) -> None:
            SOCKETS.forget(dbapi_connection)

    # -- errors ----------------------------------------------------------------------------------------------------

    def unwrap(self, exc: BaseException) -> BaseException:
        if isinstance(exc, sa.exc.DBAPIError) and exc.orig is None and isinstance(exc.statement, str):
            return _DriverMessage(exc.statement)
        return exc

    def advice(self, kind: type[LightningDM8Error]) -> str | None:
        if kind is ConstraintViolationError:
            return ("another process may have written the same key at the same moment; retry, or give each writer "
                    "its own name")
        return None

    # -- identifiers and types -------------------------------------------------------------------------------------

    def find_column(self, dialect: sa.Dialect, name: str, columns: Sequence[str]) -> str | None:
        """Match ``name`` as the server folds names.

        ``CASE_SENSITIVE=Y`` (the default): an unquoted name is stored upper-case and dmSQLAlchemy reports it
        lower-case, so ``label`` and ``LABEL`` both mean the column reported as ``label``, while a mixed-case name
        stays itself. ``CASE_SENSITIVE=N``: names keep the case they were written in and compare without it ("当大小写
        不敏感时,系统不自动转换标识符的大小写,在标识符比较时也不区分大小写": DM8 dminit manual, CASE_SENSITIVE), and
        dmSQLAlchemy then leaves result names as the server gives them (``requires_name_normalize = False``,
        dmSQLAlchemy 2.0.17 ``dmpython.py`` ``connect``): ``label`` must find ``LABEL``.
        """
        if name in columns:
            return name
        if getattr(dialect, "case_sensitive", True):
            wanted = dialect.normalize_name(dialect.denormalize_name(name))
            found = [c for c in columns if c == wanted]
        else:
            found = [c for c in columns if c.upper() == name.upper()]
        return found[0] if len(found) == 1 else None

    def binary_type(self, fixed_size: int | None) -> sa.types.TypeEngine[Any]:
        """``VARBINARY(n)`` for values of exactly ``n`` bytes up to 8,188 (whether the row stays in-row is
        :meth:`create_table`'s business), BLOB for larger or varying values."""
        if fixed_size is not None and fixed_size <= VARBINARY_LIMIT:
            return sa.VARBINARY(max(1, fixed_size))
        return sa.LargeBinary()

    # -- DDL -------------------------------------------------------------------------------------------------------

    def page_size(self, conn: sa.Connection) -> int:
        """The server's page size in bytes, asked once per engine."""
        size = _PAGE_SIZES.get(conn.dialect)
        if size is None:
            size = int(conn.exec_driver_sql("SELECT PAGE()").scalar_one())
            _PAGE_SIZES[conn.dialect] = size
        return size

    def create_table(self, conn: sa.Connection, table: sa.Table, *, checkfirst: bool = False) -> None:
        """Create ``table`` with long rows when its records may not fit in-row at this server's page size, and with
        a clustered primary key when it is keyed by ``row_id`` (see :func:`plan_rows`)."""
        if checkfirst and sa.inspect(conn).has_table(table.name):
            return
        plan_storage(table, self.page_size(conn))
        table.create(conn)

    def analyze_table(self, conn: sa.Connection, name: str) -> None:
        """Gather the planner's statistics of a freshly written table (owner and name as the catalogue holds them)."""
        dialect = conn.dialect
        owner = dialect.denormalize_name(dialect.default_schema_name or "")
        conn.exec_driver_sql(
            "CALL DBMS_STATS.GATHER_TABLE_STATS(?, ?, NULL, 100, TRUE)", (owner, dialect.denormalize_name(name))
        )

    # -- rows ------------------------------------------------------------------------------------------------------

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        return SOCKETS.fd(dbapi_connection)
