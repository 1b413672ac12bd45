"""The model server: settings, catalogue, table store, the record of every driver call, and injected faults."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from dm8model import sqltext

IN_ROW_LIMITS = {4096: 1900, 8192: 3900, 16384: 8000, 32768: 16000}
"""Bytes a record may hold in-row without long rows, by page size.

Sources: eco.dameng.com training article "达梦数据库关键初始化参数指南", 1.2 "不同页大小对应的最大行长度" (4K 1900,
8K 3900, 16K 8000, 32K 16000); DM8 SQL manual, "DM_SQL 所支持的数据类型", table 1.4.1 (the same up to 16K; 8188 at
32K is the longest CHAR), with "每条记录总长度不能大于页面大小的一半"."""

ROW_OVERHEAD = 20
"""Bytes every record spends besides its values (ROWID, TRXID, NULL flags). Source: eco.dameng.com community
article "“记录超长”问题分析与处理方法" (8 KB pages: a VARCHAR of 3,879 characters fits, 3,880 do not)."""

LOB_TYPES = frozenset({"BLOB", "IMAGE", "LONGVARBINARY", "TEXT", "CLOB", "LONGVARCHAR", "NCLOB"})
"""Types kept out of the in-row count ("大字段不参与上述计算": iter01.com/502561.html "再談記錄超長", and the same
community article on LOB_MAX_INROW_LEN)."""

VARLEN_TYPES = frozenset({"VARCHAR", "VARCHAR2", "NVARCHAR", "NVARCHAR2", "VARBINARY", "CHAR", "CHARACTER", "NCHAR",
                          "BINARY", "RAW"})

FIXED_SIZES = {"BIGINT": 8, "INT": 4, "INTEGER": 4, "SMALLINT": 2, "TINYINT": 1, "BYTE": 1, "BIT": 1, "BOOLEAN": 1,
               "FLOAT": 8, "DOUBLE": 8, "REAL": 4, "DATETIME": 8, "TIMESTAMP": 8, "DATE": 3, "TIME": 5}


@dataclass
class Column:
    name: str
    """As the catalogue holds it."""
    type: str
    length: int | None = None
    chars: bool = False
    """``VARCHAR2(n CHAR)``: the length counts characters."""
    nullable: bool = True

    @property
    def lob(self) -> bool:
        return self.type in LOB_TYPES

    @property
    def varlen(self) -> bool:
        return self.type in VARLEN_TYPES

    def in_row_bytes(self, value: Any) -> int:
        """Bytes ``value`` takes in the record (0 for NULL and for LOB columns)."""
        if value is None or self.lob:
            return 0
        if self.varlen:
            size = len(value.encode("utf-8")) if isinstance(value, str) else len(bytes(value))
            return size + (2 if size > 128 else 1)
        return FIXED_SIZES.get(self.type, 8)


@dataclass
class Table:
    name: str
    columns: list[Column]
    primary_key: list[str] = field(default_factory=list)
    clustered: bool = False
    """Created with ``CLUSTER PRIMARY KEY``."""
    long_row: bool = False
    """Created with ``STORAGE(USING LONG ROW)`` (or altered with ``ENABLE USING LONG ROW``)."""
    view_sql: str | None = None
    """The defining query, for a view."""

    def column(self, name: str, case_sensitive: bool) -> Column | None:
        for c in self.columns:
            if c.name == name or (not case_sensitive and c.name.upper() == name.upper()):
                return c
        return None


META = "DM8MODEL$TABLES"
"""The model's own list of tables and views (columns, long rows, clustering), kept in the store beside the catalogue
so that it commits with it and is shared by every process using the store (a forked DataLoader worker too)."""


def load_table(store: sqlite3.Connection, key: str) -> Table | None:
    row = store.execute(f'SELECT "META" FROM "{META}" WHERE "KEY" = ?', (key,)).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    return Table(**{**data, "columns": [Column(**c) for c in data["columns"]]})


def save_table(store: sqlite3.Connection, key: str, table: Table) -> None:
    store.execute(f'INSERT OR REPLACE INTO "{META}" VALUES (?, ?)', (key, json.dumps(dataclasses.asdict(table))))


def delete_table(store: sqlite3.Connection, key: str) -> None:
    store.execute(f'DELETE FROM "{META}" WHERE "KEY" = ?', (key,))


@dataclass
class Call:
    """One driver call: ``op`` is connect, execute, executemany, fetch, lob_read, commit, rollback or close."""

    connection: int
    op: str
    sql: str = ""
    rows: int = 0

    @property
    def text(self) -> str:
        return " ".join(self.sql.split())


class DM8Server:
    """A DM8 instance as the project sees it through dmPython.

    Args:
        page_size: bytes per page, fixed when a DM8 database is created: 4096, 8192 (DM8's default), 16384 or 32768.
        case_sensitive: ``CASE_SENSITIVE=Y`` (the default) or ``N``.
        password: the password logins need; None accepts any non-empty one.
    """

    def __init__(self, page_size: int = 8192, *, case_sensitive: bool = True, password: str | None = None,
                 user: str = "SYSDBA") -> None:
        if page_size not in IN_ROW_LIMITS:
            raise ValueError(f"DM8 pages are 4, 8, 16 or 32 KB; got {page_size}")
        self.page_size = page_size
        self.case_sensitive = case_sensitive
        self.password = password
        self.user = user
        self.ddl_auto_commit = True
        self.calls: list[Call] = []
        self.round_trips = 0
        self.lob_reads = 0
        self.lock = threading.RLock()
        self.hung = threading.Event()
        """Set: the server accepts connections and statements but never answers (until a socket is shut down)."""
        self.faults: list[tuple[str, str, int, str]] = []
        self.statistics: list[str] = []
        """Tables ``DBMS_STATS.GATHER_TABLE_STATS`` was called for, in order."""
        self.generation = 0
        """Bumped by :meth:`lose_connections`: connections opened before then are dead."""
        self._next_connection = 0
        self._dir = tempfile.mkdtemp(prefix="dm8model-")
        self.path = os.path.join(self._dir, "store.db")
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="dm8model-listener", daemon=True).start()
        self._init_store()

    # -- settings and state --------------------------------------------------------------------------------------

    @property
    def in_row_limit(self) -> int:
        return IN_ROW_LIMITS[self.page_size]

    def url(self, user: str | None = None, password: str | None = "secret") -> str:
        """A ``dm://`` URL that reaches this server (without a password when ``password`` is None)."""
        who = user or self.user
        secret = f":{password}" if password is not None else ""
        return f"dm://{who}{secret}@127.0.0.1:{self.port}"

    def key(self, name: str) -> str:
        return name if self.case_sensitive else name.upper()

    def table(self, name: str) -> Table | None:
        """The committed table or view stored as ``name``."""
        with sqlite3.connect(self.path) as store:
            return load_table(store, self.key(name))

    def dialect(self, user: str) -> sqltext.Dialect:
        return sqltext.Dialect(case_sensitive=self.case_sensitive, user=user)

    def next_connection(self) -> int:
        with self.lock:
            self._next_connection += 1
            return self._next_connection

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)
            if call.op in ("connect", "execute", "executemany", "fetch", "commit", "rollback"):
                self.round_trips += 1
            elif call.op == "lob_read":
                self.round_trips += 2  # dpi_lob_get_length, then dpi_lob_read
                self.lob_reads += 1

    # -- what tests inspect ----------------------------------------------------------------------------------------

    def statements(self, *, since: int = 0, handshake: bool = False) -> list[str]:
        """The SQL executed since call number ``since``, whitespace collapsed; COMMIT and ROLLBACK as words.

        The statements dmSQLAlchemy sends on every new connection and SQLAlchemy's pre-ping are left out unless
        ``handshake``.
        """
        out = []
        for call in self.calls[since:]:
            if call.op in ("execute", "executemany"):
                text = call.text
                if not handshake and text in HANDSHAKE:
                    continue
                out.append(text + (f" <{call.rows} rows>" if call.op == "executemany" else ""))
            elif call.op in ("commit", "rollback"):
                out.append(call.op.upper())
        return out

    def mark(self) -> int:
        """The current position in :attr:`calls`, for :meth:`statements` ``since``."""
        return len(self.calls)

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every committed row of ``table`` (its stored name, or as it would be written unquoted), ordered by its
        first column."""
        meta = self.table(table) or self.table(sqltext.fold(table))
        if meta is None:
            raise KeyError(table)
        dialect = self.dialect(self.user)
        with sqlite3.connect(self.path) as store:
            name = dialect.sqlite_name(meta.name)
            return store.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()

    # -- injected faults ---------------------------------------------------------------------------------------

    def fail_next(self, code: int, message: str, *, op: str = "execute", match: str = "") -> None:
        """The next ``op`` (execute, executemany, commit, connect) whose SQL contains ``match`` fails with DM8 error
        ``code``."""
        with self.lock:
            self.faults.append((op, match, code, message))

    def take_fault(self, op: str, sql: str) -> tuple[int, str] | None:
        with self.lock:
            for i, (fop, match, code, message) in enumerate(self.faults):
                if fop == op and match.upper() in sql.upper():
                    del self.faults[i]
                    return code, message
        return None

    def lose_connections(self) -> None:
        """Every open connection dies (a server restart): their next call fails with -70019."""
        with self.lock:
            self.generation += 1

    def close(self) -> None:
        self._closed = True
        self.hung.clear()
        try:
            self._listener.close()
        finally:
            for s in self._accepted:
                s.close()
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- internals -------------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                peer, _ = self._listener.accept()
            except OSError:
                return
            self._accepted.append(peer)  # kept open, never answered: the model answers in-process

    def _init_store(self) -> None:
        collate = "" if self.case_sensitive else " COLLATE NOCASE"
        with sqlite3.connect(self.path) as store:
            store.execute("PRAGMA journal_mode=WAL")
            for name, columns in CATALOGUE.items():
                cols = ", ".join(f'"{c}" {t}{collate if t == "TEXT" else ""}' for c, t in columns)
                store.execute(f'CREATE TABLE "{name}" ({cols})')
            for view, source in USER_VIEWS.items():
                store.execute(f'CREATE VIEW "{view}" AS {source}')
            store.execute(f'CREATE TABLE "{META}" ("KEY" TEXT PRIMARY KEY, "META" TEXT NOT NULL)')
            store.execute('INSERT INTO "DUAL" VALUES (1)')
            store.execute("INSERT INTO \"V$INSTANCE\" VALUES ('PRIMARY')")
            store.execute("INSERT INTO \"SYSOBJECTS\" (\"ID\", \"NAME\", \"TYPE$\", \"SUBTYPE$\", \"SCHID\") "
                          "VALUES (1, ?, 'SCH', NULL, 0)", (self.user,))


HANDSHAKE = frozenset({
    "SELECT MODE$ FROM V$instance;",  # dmSQLAlchemy 2.0.17 dmpython.py, DMDialect_dmPython.connect
    "SELECT SET_SESSION_IDENTITY_CHECK(1);",  # same place
    "SELECT 1 FROM DUAL",  # SQLAlchemy's pool pre-ping (DefaultDialect.do_ping)
})

USER_VIEWS = {
    # The session user's objects (one user per model server): the Oracle-style views DM8 offers besides ALL_*.
    "USER_TABLES": 'SELECT "TABLE_NAME", "TABLESPACE_NAME" FROM "ALL_TABLES"',
    "USER_TAB_COLUMNS": 'SELECT "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "DATA_LENGTH", "CHAR_LENGTH", '
                        '"DATA_PRECISION", "DATA_SCALE", "NULLABLE", "COLUMN_ID" FROM "ALL_TAB_COLS"',
}

CATALOGUE: dict[str, list[tuple[str, str]]] = {
    # What dmSQLAlchemy 2.0.17 base.py reads: has_table, get_table_names, get_view_names, get_columns.
    "ALL_TABLES": [("OWNER", "TEXT"), ("TABLE_NAME", "TEXT"), ("TABLESPACE_NAME", "TEXT"), ("DURATION", "TEXT"),
                   ("COMPRESSION", "TEXT"), ("COMPRESS_FOR", "TEXT")],
    "ALL_VIEWS": [("OWNER", "TEXT"), ("VIEW_NAME", "TEXT"), ("TEXT", "TEXT")],
    "ALL_TAB_COLS": [("OWNER", "TEXT"), ("TABLE_NAME", "TEXT"), ("COLUMN_NAME", "TEXT"), ("DATA_TYPE", "TEXT"),
                     ("DATA_LENGTH", "INTEGER"), ("CHAR_LENGTH", "INTEGER"), ("DATA_PRECISION", "INTEGER"),
                     ("DATA_SCALE", "INTEGER"), ("NULLABLE", "TEXT"), ("DATA_DEFAULT", "TEXT"),
                     ("VIRTUAL_COLUMN", "TEXT"), ("HIDDEN_COLUMN", "TEXT"), ("COLUMN_ID", "INTEGER")],
    "ALL_COL_COMMENTS": [("SCHEMA_NAME", "TEXT"), ("TABLE_NAME", "TEXT"), ("COLUMN_NAME", "TEXT"),
                         ("COMMENTS", "TEXT")],
    "SYSOBJECTS": [("ID", "INTEGER"), ("NAME", "TEXT"), ("TYPE$", "TEXT"), ("SUBTYPE$", "TEXT"), ("SCHID", "INTEGER"),
                   ("INFO3", "INTEGER"), ("INFO6", "INTEGER")],
    "SYSCOLUMNS": [("ID", "INTEGER"), ("NAME", "TEXT"), ("COLID", "INTEGER"), ("TYPE$", "TEXT"),
                   ("LENGTH$", "INTEGER"), ("SCALE", "INTEGER"), ("INFO2", "INTEGER")],
    "V$INSTANCE": [("MODE$", "TEXT")],
    "DUAL": [("DUMMY", "INTEGER")],
}
