"""The stand-in for the ``dmPython`` module: ``connect()``, connections and cursors driven by dmSQLAlchemy.

Exceptions and type objects are dmPython's own (the real module must be installed), so everything that catches
``dmPython.Error`` or reads ``DmError.code`` treats the model's errors as the driver's. Each statement is recorded on
the server (:class:`dm8model.server.Call`) and run on the server's SQLite store by :class:`Session`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import socket
import sqlite3
import types
from collections.abc import Sequence
from typing import Any

import dmPython as _real  # exceptions and type objects come from the real driver

from dm8model import sqltext
from dm8model.server import ROW_OVERHEAD, Call, Column, DM8Server, Table, delete_table, load_table, save_table
from dm8model.sqltext import Token, Unsupported

# -- DM8 error codes the model raises ----------------------------------------------------------------------------------

SOCKET_FAILURE = (-70028, "Create SOCKET connection failure")
"""Observed from dmPython 2.6.1 against a closed port (tests/db/test_dm8_offline.py); dmSQLAlchemy's is_disconnect."""
NETWORK_FAILURE = (-70019, "Network communication failure")
"""Observed from dmPython 2.6.1 against a silent or closing peer and after a shutdown socket (test_dm8_offline)."""
RECORD_TOO_LONG = (-2665, "Record is too long")
"""-2665 "记录超长": Dameng E学, "【干货攻略】达梦报错超长记录如何分析" (modb.pro/db/1862329553083973632). The English
text is the model's."""
NO_SUCH_TABLE = (-2106, "Invalid table or view name")
"""-2106 "无效的表或视图名": seen in public logs only (no first-party listing found)."""
UNIQUE_VIOLATION = (-6602, "Violate unique constraint")
"""In -6601..-6612, the range dmPython raises as IntegrityError (DamengDB/dmPython Environment.c). The number for a
unique key in particular has no first-party source."""
NOT_NULL_VIOLATION = (-6609, "Violate not null constraint")
"""In the same IntegrityError range; the number itself is the model's choice (UNSOURCED)."""
# UNSOURCED codes, the model's own choice where no listing was found; only their class matters to the project.
NO_SUCH_COLUMN = (-2111, "Invalid column name")
OBJECT_EXISTS = (-2124, "Object already exists")
VALUE_TOO_LONG = (-6169, "Value too long for the column")
SYNTAX_ERROR = (-2007, "Syntax error")
WRONG_PASSWORD = (-2501, "Invalid user name or password")
READ_ONLY = (-1, "Execution failed: the transaction is read only")


class DmError:
    """What dmPython puts in ``exc.args[0]``: ``code``, ``message`` (``[CODE:n]text``), ``offset``, ``context``."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.message = f"[CODE:{code}]{text}"
        self.offset = 0
        self.context = ""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"DmError({self.code}, {self.message!r})"


def fail(error: tuple[int, str], detail: str = "") -> BaseException:
    """The exception dmPython raises for ``error``: IntegrityError for -6601..-6612, OperationalError for -501..-526,
    DatabaseError otherwise (DamengDB/dmPython Environment.c, Environment_RaiseError)."""
    code, text = error
    if -6612 <= code <= -6601:
        kind = _real.IntegrityError
    elif -526 <= code <= -501:
        kind = _real.OperationalError
    else:
        kind = _real.DatabaseError
    return kind(DmError(code, text + (f"[{detail}]" if detail else "")))


# -- values ---------------------------------------------------------------------------------------------------------


class Lob:
    """A BLOB or CLOB value on its way out: handing it over costs dmPython two calls (vLob.c ``vLob_GetValue``)."""

    def __init__(self, value: Any) -> None:
        self.value = value


EMPTY_LOB = "\x00dm8model:empty LOB\x00"
"""What the store holds for an empty BLOB or CLOB value: CPython's sqlite3 hands a converter None for a zero-length
value, so an empty LOB would come back NULL. Only empty values are replaced: lengths of others stay right."""


def mark(column: Column, value: Any) -> Any:
    if not column.lob or value is None or len(value):
        return value
    return EMPTY_LOB if isinstance(value, str) else EMPTY_LOB.encode()


def _lob(raw: bytes, text: bool) -> Lob:
    if raw == EMPTY_LOB.encode():
        return Lob("" if text else b"")
    return Lob(raw.decode("utf-8") if text else bytes(raw))


sqlite3.register_converter("DMBLOB", lambda raw: _lob(raw, text=False))
sqlite3.register_converter("DMCLOB", lambda raw: _lob(raw, text=True))
sqlite3.register_converter("DMDATETIME", lambda raw: dt.datetime.fromisoformat(raw.decode().strip()))
sqlite3.register_converter("DMDATE", lambda raw: dt.date.fromisoformat(raw.decode().strip()[:10]))
sqlite3.register_converter("DMBIT", lambda raw: bool(int(raw)))
"""BIT and BOOLEAN values come back as ``bool`` (DamengDB/dmPython ``var.c``, ``dmVar_TypeBySQLType``: ``DSQL_BIT`` and
``DSQL_BOOLEAN`` -> ``vt_Boolean``; ``vNumber.c`` ``NumberVar_GetValue``: ``PyBool_FromLong``), other integers as
``int`` (``DSQL_SMALLINT`` and the other integer types -> ``vt_Integer`` / ``vt_Bigint``)."""

_SQLITE_TYPES = {
    **dict.fromkeys(("BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT", "BYTE"), "INTEGER"),
    **dict.fromkeys(("BIT", "BOOLEAN"), "DMBIT INTEGER"),
    **dict.fromkeys(("FLOAT", "DOUBLE", "REAL"), "REAL"),
    **dict.fromkeys(("DEC", "DECIMAL", "NUMBER", "NUMERIC"), "NUMERIC"),
    **dict.fromkeys(("VARCHAR", "VARCHAR2", "NVARCHAR", "NVARCHAR2", "CHAR", "CHARACTER", "NCHAR"), "TEXT"),
    **dict.fromkeys(("TEXT", "CLOB", "LONGVARCHAR", "NCLOB"), "DMCLOB TEXT"),
    **dict.fromkeys(("VARBINARY", "BINARY", "RAW"), "BLOB"),
    **dict.fromkeys(("BLOB", "IMAGE", "LONGVARBINARY"), "DMBLOB BLOB"),
    **dict.fromkeys(("DATETIME", "TIMESTAMP"), "DMDATETIME TEXT"),
    "DATE": "DMDATE TEXT",
}


def _param(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if hasattr(value, "item") and not isinstance(value, (bytes, str)):  # numpy scalars
        return value.item()
    if isinstance(value, (list, dict, tuple)):
        raise Unsupported(f"a parameter of type {type(value).__name__}")
    return value


def _type_code(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, int):
        return _real.BIGINT
    if isinstance(value, float):
        return _real.DOUBLE
    if isinstance(value, (bytes, bytearray)):
        return _real.BINARY
    if isinstance(value, dt.datetime):
        return _real.TIMESTAMP
    if isinstance(value, dt.date):
        return _real.DATE
    return _real.STRING


# -- the module -----------------------------------------------------------------------------------------------------

_COPIED = ("apilevel", "threadsafety", "paramstyle", "version", "Warning", "Error", "InterfaceError", "DatabaseError",
           "DataError", "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
           "NotSupportedError", "STRING", "BINARY", "NUMBER", "ROWID", "DATETIME", "DATE", "TIME", "TIMESTAMP",
           "BLOB", "CLOB", "BFILE", "LOB", "BIGINT", "DOUBLE", "REAL", "DECIMAL", "BOOLEAN", "INTERVAL",
           "LONG_BINARY", "LONG_STRING", "FIXED_STRING", "FIXED_BINARY", "CURSOR", "TupleCursor", "DictCursor",
           "LANGUAGE_EN", "LANGUAGE_CN", "PG_UTF8", "PG_GB18030", "DSQL_AUTOCOMMIT_ON", "DSQL_AUTOCOMMIT_OFF",
           "Date", "Time", "Timestamp", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks", "Binary")


def module(server: DM8Server) -> types.ModuleType:
    """A ``dmPython`` module whose ``connect`` reaches ``server``."""
    mod = types.ModuleType("dmPython", "The DM8 behaviour model's stand-in for dmPython (tests only).")
    for name in _COPIED:
        if hasattr(_real, name):
            setattr(mod, name, getattr(_real, name))
    mod.DmError = DmError  # type: ignore[attr-defined]
    mod.server = server  # type: ignore[attr-defined]
    mod.real_driver = _real  # type: ignore[attr-defined]  # for tests that need the real one back

    def connect(*args: Any, **kwargs: Any) -> Connection:
        if args:
            raise Unsupported("positional connect arguments")
        return Connection(server, **kwargs)

    mod.connect = mod.Connect = connect  # type: ignore[attr-defined]
    mod.Connection = Connection  # type: ignore[attr-defined]
    mod.Cursor = Cursor  # type: ignore[attr-defined]
    return mod


class Connection:
    """A dmPython connection: a socket to the server's port (so that a hung server blocks on a real read, and a
    shutdown ends it) and a SQLite connection to the store."""

    KEYWORDS = frozenset({"user", "password", "host", "server", "port", "dsn", "autoCommit", "login_timeout",
                          "connection_timeout", "local_code", "lang_id", "schema"})
    """The dmPython keywords the model understands (dmPython Connection.c, Connection_Init keyword list)."""

    def __init__(self, server: DM8Server, **kw: Any) -> None:
        unknown = set(kw) - self.KEYWORDS
        if unknown:
            raise Unsupported(f"connect keywords {sorted(unknown)}")
        if kw.get("host") is not None and kw.get("server") is not None:
            raise _real.NotSupportedError("host or server can only set one")  # Connection.c, Connection_Init
        if kw.get("password") is None:
            # dmPython Connection.c, Connection_Init: NotSupportedError("password cannot be empty").
            raise _real.NotSupportedError("password cannot be empty")
        user = kw.get("user", "SYSDBA")
        password = kw["password"]
        host = kw.get("host") or kw.get("server") or "localhost"
        port = int(kw.get("port", 5236))
        login_timeout = kw.get("login_timeout")
        connection_timeout = kw.get("connection_timeout", 0)
        autoCommit = kw.get("autoCommit", True)
        local_code = kw.get("local_code", 1)
        lang_id = kw.get("lang_id", 0)
        schema = kw.get("schema")
        self.server = server
        self.id = server.next_connection()
        self.user = user
        self.generation = server.generation
        self.autoCommit = bool(autoCommit)
        self.local_code = local_code
        self.lang_id = lang_id
        self.login_timeout = login_timeout
        self.connection_timeout = connection_timeout
        self.str_case_sensitive = server.case_sensitive
        self.current_schema = schema or user.upper()
        self.server_version = "8.1.3.162"
        self.outputtypehandler = None
        self.closed = False
        self.dead = False
        self._in_txn = False
        self._read_only = False
        self.returned: list[Any] | None = None
        server.record(Call(self.id, "connect", user))
        try:
            self.sock = socket.create_connection((host, port), timeout=login_timeout or None)
        except OSError:
            raise fail(SOCKET_FAILURE) from None
        if server.hung.is_set():
            self._wait_for_answer(login_timeout or None)
        if server.password is not None and password != server.password:
            self.sock.close()
            raise fail(WRONG_PASSWORD)
        self.dialect = server.dialect(user)
        self.store = sqlite3.connect(server.path, isolation_level=None, check_same_thread=False, timeout=5,
                                     detect_types=sqlite3.PARSE_DECLTYPES)
        self.store.execute("PRAGMA foreign_keys=OFF")
        for name, arity, fn in (
            ("PAGE", 0, lambda: server.page_size),
            ("SET_SESSION_IDENTITY_CHECK", 1, lambda flag: 0),
            ("SF_GET_CASE_SENSITIVE_FLAG", 0, lambda: int(server.case_sensitive)),
            ("CASE_SENSITIVE", 0, lambda: int(server.case_sensitive)),
            ("NVL", 2, lambda a, b: b if a is None else a),
            ("LENGTHB", 1, lambda v: None if v is None else len(v.encode() if isinstance(v, str) else v)),
        ):
            self.store.create_function(name, arity, fn, deterministic=True)

    # -- DB-API ----------------------------------------------------------------------------------------------------

    def cursor(self) -> Cursor:
        self._usable()
        return Cursor(self)

    def commit(self) -> None:
        self._usable()
        self.server.record(Call(self.id, "commit"))
        self._alive()
        self._end("COMMIT")

    def rollback(self) -> None:
        self._usable()
        self.server.record(Call(self.id, "rollback"))
        self._alive()
        self._end("ROLLBACK")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.record(Call(self.id, "close"))
        try:
            if self._in_txn:
                self.store.execute("ROLLBACK")
        finally:
            self.store.close()
            self.sock.close()

    # -- internals -------------------------------------------------------------------------------------------------

    def _usable(self) -> None:
        if self.closed:
            raise _real.InterfaceError("not connected")

    def _alive(self) -> None:
        if self.dead or self.generation != self.server.generation:
            self.dead = True
            raise fail(NETWORK_FAILURE)

    def _wait_for_answer(self, timeout: float | None) -> None:
        """Block on the socket as dpi does for a reply that never comes: ends on timeout or shutdown (-70019)."""
        self.sock.settimeout(timeout)
        try:
            self.sock.recv(1)
        except OSError:
            pass
        self.dead = True
        raise fail(NETWORK_FAILURE)

    def _end(self, how: str) -> None:
        if self._in_txn:
            self.store.execute(how)
            self._in_txn = False
        self._read_only = False

    def _begin(self) -> None:
        if not self._in_txn:
            self.store.execute("BEGIN")
            self._in_txn = True

    def run(self, op: str, sql: str, rows: Sequence[Sequence[Any]]) -> tuple[list[Any], list[Any] | None, int]:
        """Run ``sql`` once per parameter row in ``rows``: (result rows, description, rowcount)."""
        self._usable()
        self.server.record(Call(self.id, op, sql, len(rows) if op == "executemany" else 0))
        self._alive()
        fault = self.server.take_fault(op, sql)
        if fault is not None:
            raise fail(fault)
        if self.server.hung.is_set():
            self._wait_for_answer(self.connection_timeout or None)
        tokens = sqltext.tokenize(sql)
        if not tokens:
            raise fail(SYNTAX_ERROR, "empty statement")
        params = [[_param(v) for v in row] for row in rows]
        session = Session(self, tokens, params)
        outcome = session.run()
        self.returned = session.returned
        return outcome


class Session:
    """One statement on one connection."""

    def __init__(self, conn: Connection, tokens: list[Token], params: list[list[Any]]) -> None:
        self.conn = conn
        self.server = conn.server
        self.dialect = conn.dialect
        self.tokens = tokens
        self.params = params
        self.returned: list[Any] | None = None
        """What ``execute``/``executemany`` return for ``RETURNING ... INTO ?`` (dmPython's out parameters)."""

    @property
    def words(self) -> list[str]:
        return [t.upper for t in self.tokens[:4]]

    def run(self) -> tuple[list[Any], list[Any] | None, int]:
        w = self.words
        if w[0] in ("SELECT", "WITH", "("):
            return self.query()
        if w[0] == "INSERT":
            return self.dml(insert=True)
        if w[0] in ("UPDATE", "DELETE"):
            return self.dml()
        if w[0] in ("COMMIT", "ROLLBACK"):
            self.conn._end(w[0])
            return [], None, 0
        if w[0] == "SET" and w[1] == "TRANSACTION":
            self.conn._begin()
            self.conn._read_only = w[2] == "READ" and w[3] == "ONLY"
            return [], None, 0
        if w[0] == "SET" and w[1] == "SESSION":  # SET SESSION CHARACTERISTICS AS ISOLATION LEVEL ...
            return [], None, 0
        if w[0] == "CALL":
            return self.call()
        if w[0] in ("CREATE", "DROP", "ALTER", "TRUNCATE", "COMMENT"):
            return self.ddl()
        raise Unsupported(f"statement {' '.join(w)}...")

    # -- plumbing --------------------------------------------------------------------------------------------------

    def sqlite(self, sql: str, params: list[list[Any]], *, many: bool = False) -> sqlite3.Cursor:
        cursor = self.conn.store.cursor()
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params[0] if params else [])
        except sqlite3.IntegrityError as exc:
            text = str(exc)
            raise fail(UNIQUE_VIOLATION if "UNIQUE" in text else NOT_NULL_VIOLATION, self._names(text)) from None
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "no such table" in text:
                raise fail(NO_SUCH_TABLE, self._names(text.split(":", 1)[1].strip())) from None
            if "no such column" in text:
                raise fail(NO_SUCH_COLUMN, self._names(text.split(":", 1)[1].strip())) from None
            if "already exists" in text:
                raise fail(OBJECT_EXISTS, self._names(text)) from None
            if "locked" in text or "busy" in text:
                raise RuntimeError(f"dm8model: {text} (the SQLite store allows one writer at a time, DM8 does not: "
                                   f"a limit of the model, not of the code under test)") from None
            raise fail(SYNTAX_ERROR, text) from None
        return cursor

    def _names(self, text: str) -> str:
        return self.dialect.result_name(text) if self.dialect.case_sensitive else text

    def transactional(self) -> None:
        if not self.conn.autoCommit:
            self.conn._begin()

    def after(self) -> None:
        if self.conn.autoCommit:
            self.conn._end("COMMIT")

    def translate(self, tokens: list[Token]) -> str:
        return sqltext.translate(tokens, self.dialect)

    def name_at(self, i: int) -> str:
        token = self.tokens[i]
        if token.kind not in ("word", "quoted"):
            raise Unsupported(f"a name expected at {token.text!r}")
        return self.dialect.stored(token)

    def lookup(self, name: str) -> Table | None:
        """The table or view stored as ``name``, as this connection sees the store (its own DDL included)."""
        return load_table(self.conn.store, self.server.key(name))

    def table_or_fail(self, name: str) -> Table:
        table = self.lookup(name)
        if table is None:
            raise fail(NO_SUCH_TABLE, name)
        return table

    # -- queries ---------------------------------------------------------------------------------------------------

    def query(self) -> tuple[list[Any], list[Any] | None, int]:
        self.transactional()
        tokens = self.tokens
        words = [t.upper for t in tokens]
        if "FOR" in words and words[words.index("FOR") + 1:words.index("FOR") + 2] == ["UPDATE"]:
            # Row locks until the transaction ends: the model takes the store's write lock instead (one writer).
            tokens = tokens[:words.index("FOR")]
            if not self.conn.autoCommit:
                self.sqlite('UPDATE "DUAL" SET "DUMMY" = "DUMMY"', [])
        cursor = self.sqlite(self.translate(tokens), self.params)
        rows = cursor.fetchall()
        names = [self.dialect.result_name(d[0]) for d in cursor.description or ()]
        description = []
        for i, name in enumerate(names):
            sample = next((r[i] for r in rows if r[i] is not None), None)
            sample = sample.value if isinstance(sample, Lob) else sample
            description.append((name, _type_code(sample), None, None, None, None, True))
        self.after()
        return rows, description, -1

    # -- writes ----------------------------------------------------------------------------------------------------

    def dml(self, insert: bool = False) -> tuple[list[Any], list[Any] | None, int]:
        if self.conn._read_only:
            raise fail(READ_ONLY)
        self.transactional()
        tokens, params = self.tokens, self.params
        returning: list[str] = []
        words = [t.upper for t in tokens]
        if "RETURNING" in words:
            tokens, params, returning = self.split_returning(tokens, params)
        params = self.prepare_insert(tokens, params) if insert else self.prepare_update(tokens, params)
        sql = self.translate(tokens)
        if returning:
            # dmSQLAlchemy's executemany ends an INSERT with "RETURNING t.key INTO ?" (extensions.py,
            # do_executemany_return) and reads result[n] for the n-th parameter: the values of each row, in order.
            outs: list[list[Any]] = [[] for _ in returning]
            count = 0
            for row in params or [[]]:
                got = self.sqlite(f"{sql} RETURNING {', '.join(returning)}", [row]).fetchall()
                count += len(got)
                for values in got:
                    for i, value in enumerate(values):
                        outs[i].append(value.value if isinstance(value, Lob) else value)
            width = len(params[0]) if params else 0
            self.returned = [None] * width + outs
        else:
            count = self.sqlite(sql, params, many=len(params) > 1).rowcount
        self.after()
        return [], None, count

    def split_returning(self, tokens: list[Token], params: list[list[Any]]
                        ) -> tuple[list[Token], list[list[Any]], list[str]]:
        words = [t.upper for t in tokens]
        at, into = words.index("RETURNING"), (words.index("INTO", words.index("RETURNING")) if "INTO" in
                                                words[words.index("RETURNING"):] else len(words))
        items = sqltext.split_top_level(tokens[at + 1:into])
        outs = sum(1 for t in tokens[into:] if t.kind == "param")
        columns = []
        for item in items:
            last = item[-1]
            columns.append("rowid" if last.upper == "ROWID" and last.kind == "word"
                           else self.dialect.sqlite_name(self.dialect.stored(last)))
        return tokens[:at], [row[:len(row) - outs] for row in params], columns

    def target(self, tokens: list[Token], at: int) -> Table:
        table = self.table_or_fail(self.dialect.stored(tokens[at]))
        if table.view_sql is not None:
            raise Unsupported("writing through a view")
        return table

    def prepare_insert(self, tokens: list[Token], params: list[list[Any]]) -> list[list[Any]]:
        """Check each record as DM8 would (in-row limit without long rows, declared lengths; see :mod:`dm8model`),
        and mark empty LOB values for the store (:data:`EMPTY_LOB`)."""
        i = 2 if tokens[1].upper == "INTO" else 1
        table = self.target(tokens, i)
        rest = tokens[i + 1:]
        if rest and rest[0].text == "(":
            end = sqltext.matching_paren(rest, 0)
            names = [self.dialect.stored(p[0]) for p in sqltext.split_top_level(rest[1:end])]
            rest = rest[end + 1:]
        else:
            names = [c.name for c in table.columns]
        columns = [table.column(n, self.server.case_sensitive) for n in names]
        if any(c is None for c in columns):
            raise fail(NO_SUCH_COLUMN, ", ".join(n for n, c in zip(names, columns, strict=True) if c is None))
        if not rest or rest[0].upper != "VALUES":
            if any(c is not None and c.lob for c in columns):
                raise Unsupported("INSERT ... SELECT into a LOB column")
            return params
        values = sqltext.split_top_level(rest[2:sqltext.matching_paren(rest, 1)])
        out = []
        for row in params or [[]]:
            row = list(row)
            at = 0
            total = ROW_OVERHEAD
            for column, value_tokens in zip(columns, values, strict=False):
                assert column is not None
                if len(value_tokens) == 1 and value_tokens[0].kind == "param":
                    value = row[at]
                    self.check_length(table, column, value)
                    total += column.in_row_bytes(value)
                    row[at] = mark(column, value)
                    at += 1
                    continue
                if column.lob and not (len(value_tokens) == 1 and value_tokens[0].upper == "NULL"):
                    raise Unsupported("a LOB value written as a literal or expression")
                if len(value_tokens) == 1 and value_tokens[0].kind == "string":
                    value = value_tokens[0].text[1:-1].replace("''", "'")
                    self.check_length(table, column, value)
                    total += column.in_row_bytes(value)
                    continue
                at += sum(1 for t in value_tokens if t.kind == "param")
                if not (len(value_tokens) == 1 and value_tokens[0].upper == "NULL") and not column.varlen:
                    total += column.in_row_bytes(0)  # a number or an expression: its fixed size
            if not table.long_row and total > self.server.in_row_limit:
                raise fail(RECORD_TOO_LONG, f"{table.name}: {total} > {self.server.in_row_limit} bytes")
            out.append(row)
        return out if params else params

    def prepare_update(self, tokens: list[Token], params: list[list[Any]]) -> list[list[Any]]:
        """Declared lengths and LOB marks for ``UPDATE t SET col = ?, ...`` (DELETE passes through)."""
        if tokens[0].upper != "UPDATE":
            return params
        table = self.target(tokens, 1)
        words = [t.upper for t in tokens]
        start = words.index("SET") + 1
        stop = words.index("WHERE") if "WHERE" in words else len(tokens)
        at = 0
        marks: list[tuple[int, Column]] = []
        for assignment in sqltext.split_top_level(tokens[start:stop]):
            column = table.column(self.dialect.stored(assignment[-3] if len(assignment) >= 3 and
                                                     assignment[-2].text == "=" else assignment[0]),
                                  self.server.case_sensitive)
            value = assignment[assignment.index(next(t for t in assignment if t.text == "=")) + 1:]
            if column is not None and len(value) == 1 and value[0].kind == "param":
                marks.append((at, column))
            elif column is not None and column.lob and not (len(value) == 1 and value[0].upper == "NULL"):
                raise Unsupported("a LOB value written as a literal or expression")
            at += sum(1 for t in value if t.kind == "param")
        out = []
        for row in params:
            row = list(row)
            for position, column in marks:
                self.check_length(table, column, row[position])
                row[position] = mark(column, row[position])
            out.append(row)
        return out

    def check_length(self, table: Table, column: Column, value: Any) -> None:
        if value is None or column.length is None or not column.varlen:
            return
        size = len(value) if (column.chars and isinstance(value, str)) else (
            len(value.encode("utf-8")) if isinstance(value, str) else len(value))
        if size > column.length:
            raise fail(VALUE_TOO_LONG, f"{table.name}.{column.name}: {size} > {column.length}")

    def call(self) -> tuple[list[Any], list[Any] | None, int]:
        """``CALL DBMS_STATS.GATHER_TABLE_STATS(owner, table, ...)`` is recorded; other procedures are not modelled."""
        words = [t.upper for t in self.tokens[1:4]]
        if words != ["DBMS_STATS", ".", "GATHER_TABLE_STATS"]:
            raise Unsupported(f"CALL {' '.join(words)}")
        args = sqltext.split_top_level(self.tokens[5:sqltext.matching_paren(self.tokens, 4)])
        values: list[Any] = []
        at = 0
        for arg in args[:2]:
            if arg[0].kind == "param":
                values.append(self.params[0][at] if self.params else None)
                at += 1
            else:
                values.append(sqltext.unquote('"' + arg[0].text[1:-1] + '"'))
        owner, name = values
        same = (lambda a, b: a == b) if self.server.case_sensitive else (lambda a, b: a.upper() == b.upper())
        if not same(owner, self.conn.current_schema) or self.lookup(name) is None:
            raise fail(NO_SUCH_TABLE, f"{owner}.{name}")
        with self.server.lock:
            self.server.statistics.append(self.lookup(name).name)  # type: ignore[union-attr]
        return [], None, 0

    # -- DDL -------------------------------------------------------------------------------------------------------

    def ddl(self) -> tuple[list[Any], list[Any] | None, int]:
        """DDL commits the open transaction first and then itself (DDL_AUTO_COMMIT=1, DM8's default: "遇到DDL语句则
        自动提交该DDL语句和以前的DML和DDL操作", DM8 SQL manual, 事务管理)."""
        if self.conn._read_only:
            raise fail(READ_ONLY)
        conn = self.conn
        with self.server.lock:
            if self.server.ddl_auto_commit:
                conn._end("COMMIT")
            conn._begin()
            try:
                self.ddl_statement()
                if self.server.ddl_auto_commit:
                    conn._end("COMMIT")
            except BaseException:
                if conn._in_txn:
                    conn._end("ROLLBACK")
                raise
        return [], None, 0

    def ddl_statement(self) -> None:
        w = self.words
        if w[:2] == ["CREATE", "TABLE"]:
            self.create_table()
        elif w[0] == "CREATE" and "VIEW" in w:
            self.create_view(replace=w[1] == "OR")
        elif w[:2] == ["DROP", "TABLE"] or w[:2] == ["DROP", "VIEW"]:
            self.drop(view=w[1] == "VIEW")
        elif w[:2] == ["ALTER", "TABLE"]:
            self.alter()
        elif w[:2] == ["TRUNCATE", "TABLE"]:
            table = self.table_or_fail(self.name_at(2))
            self.sqlite(f"DELETE FROM {self.dialect.sqlite_name(table.name)}", [])
        else:
            raise Unsupported(f"DDL {' '.join(w)}")

    def create_table(self) -> None:
        i = 2
        if [t.upper for t in self.tokens[2:5]] == ["IF", "NOT", "EXISTS"]:
            i = 5
        name = self.name_at(i)
        if self.lookup(name) is not None:
            if i == 5:
                return
            raise fail(OBJECT_EXISTS, name)
        if self.tokens[i + 1].text != "(":
            raise Unsupported("CREATE TABLE ... AS SELECT")
        end = sqltext.matching_paren(self.tokens, i + 1)
        table = Table(name, [])
        constraints: list[str] = []
        for part in sqltext.split_top_level(self.tokens[i + 2:end]):
            head = [t.upper for t in part[:4]]
            if head[0] in ("CONSTRAINT", "PRIMARY", "CLUSTER", "NOT", "UNIQUE"):
                constraints.append(self.constraint(table, part))
            else:
                table.columns.append(self.column(part))
        self.storage(table, self.tokens[end + 1:])
        collate = "" if self.server.case_sensitive else " COLLATE NOCASE"
        defs = []
        for c in table.columns:
            decl = _SQLITE_TYPES.get(c.type)
            if decl is None:
                raise Unsupported(f"column type {c.type}")
            text_like = decl.endswith("TEXT") and c.type not in ("DATETIME", "TIMESTAMP", "DATE")
            defs.append(f"{self.dialect.sqlite_name(c.name)} {decl}{'' if c.nullable else ' NOT NULL'}"
                        f"{collate if text_like else ''}")
        self.sqlite(f"CREATE TABLE {self.dialect.sqlite_name(name)} ({', '.join(defs + constraints)})", [])
        self.register(table)

    def column(self, part: list[Token]) -> Column:
        column = Column(self.dialect.stored(part[0]), part[1].upper)
        at = 2
        if column.type == "DOUBLE" and at < len(part) and part[at].upper == "PRECISION":
            at += 1
        if at < len(part) and part[at].text == "(":
            end = sqltext.matching_paren(part, at)
            inner = part[at + 1:end]
            if inner and inner[0].kind == "number":
                column.length = int(inner[0].text)
            column.chars = any(t.upper == "CHAR" for t in inner[1:])
            at = end + 1
        words = [t.upper for t in part[at:]]
        if "IDENTITY" in words or "AUTO_INCREMENT" in words:
            raise Unsupported("identity columns")
        column.nullable = not any(words[k:k + 2] == ["NOT", "NULL"] for k in range(len(words)))
        return column

    def constraint(self, table: Table, part: list[Token]) -> str:
        words = [t.upper for t in part]
        if words[0] == "CONSTRAINT":
            part, words = part[2:], words[2:]
        if words[:3] == ["CLUSTER", "PRIMARY", "KEY"]:
            table.clustered = True
            part = part[1:]
            words = words[1:]
        if words[:2] == ["PRIMARY", "KEY"]:
            cols = [self.dialect.stored(p[0]) for p in sqltext.split_top_level(part[3:sqltext.matching_paren(part, 2)])]
            table.primary_key = cols
            return f"PRIMARY KEY ({', '.join(self.dialect.sqlite_name(c) for c in cols)})"
        if words[0] == "UNIQUE":
            cols = [self.dialect.stored(p[0]) for p in sqltext.split_top_level(part[2:sqltext.matching_paren(part, 1)])]
            return f"UNIQUE ({', '.join(self.dialect.sqlite_name(c) for c in cols)})"
        raise Unsupported(f"constraint {' '.join(words[:4])}")

    def storage(self, table: Table, rest: list[Token]) -> None:
        """``STORAGE(USING LONG ROW)`` and other STORAGE items; nothing else after the column list is modelled."""
        if not rest:
            return
        if rest[0].upper != "STORAGE" or rest[1].text != "(":
            raise Unsupported(f"table option {rest[0].text}")
        items = sqltext.split_top_level(rest[2:sqltext.matching_paren(rest, 1)])
        for item in items:
            words = [t.upper for t in item]
            if words == ["USING", "LONG", "ROW"]:
                table.long_row = True
            elif words == ["DISABLE", "USING", "LONG", "ROW"]:
                table.long_row = False
            elif words[0] not in ("CLUSTERBTR", "ON", "FILLFACTOR", "WITH", "WITHOUT", "NOBRANCH", "BRANCH"):
                raise Unsupported(f"STORAGE item {' '.join(words)}")

    def register(self, table: Table) -> None:
        """The catalogue rows dmSQLAlchemy reads (ALL_TABLES, ALL_VIEWS, ALL_TAB_COLS...), and the model's own."""
        owner = self.conn.current_schema
        (object_id,) = self.sqlite('SELECT COALESCE(MAX("ID"), 1) + 1 FROM "SYSOBJECTS"', []).fetchone()
        if table.view_sql is None:
            self.sqlite('INSERT INTO "ALL_TABLES" VALUES (?, ?, \'MAIN\', NULL, \'DISABLED\', NULL)',
                        [[owner, table.name]])
            info3 = (1 << 50) if table.long_row else 0  # SYSOBJECTS.INFO3 bit 50: USING LONG ROW
            self.sqlite('INSERT INTO "SYSOBJECTS" VALUES (?, ?, \'SCHOBJ\', \'UTAB\', 1, ?, 0)',
                        [[object_id, table.name, info3]])
        else:
            self.sqlite('INSERT INTO "ALL_VIEWS" VALUES (?, ?, ?)', [[owner, table.name, table.view_sql]])
            self.sqlite('INSERT INTO "SYSOBJECTS" VALUES (?, ?, \'SCHOBJ\', \'VIEW\', 1, 0, 0)',
                        [[object_id, table.name]])
        for n, c in enumerate(table.columns, start=1):
            self.sqlite('INSERT INTO "ALL_TAB_COLS" VALUES '
                        '(?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL, \'NO\', \'NO\', ?)',
                        [[owner, table.name, c.name, c.type, c.length, c.length, "Y" if c.nullable else "N", n]])
            self.sqlite('INSERT INTO "ALL_COL_COMMENTS" VALUES (?, ?, ?, NULL)', [[owner, table.name, c.name]])
            self.sqlite('INSERT INTO "SYSCOLUMNS" VALUES (?, ?, ?, ?, ?, 0, 0)',
                        [[object_id, c.name, n, c.type, c.length]])
        save_table(self.conn.store, self.server.key(table.name), table)

    def unregister(self, table: Table) -> None:
        for catalogue, column in (("ALL_TABLES", "TABLE_NAME"), ("ALL_VIEWS", "VIEW_NAME"),
                                  ("ALL_TAB_COLS", "TABLE_NAME"), ("ALL_COL_COMMENTS", "TABLE_NAME")):
            self.sqlite(f'DELETE FROM "{catalogue}" WHERE "{column}" = ?', [[table.name]])
        self.sqlite('DELETE FROM "SYSCOLUMNS" WHERE "ID" IN (SELECT "ID" FROM "SYSOBJECTS" WHERE "NAME" = ? '
                    'AND "TYPE$" = \'SCHOBJ\')', [[table.name]])
        self.sqlite('DELETE FROM "SYSOBJECTS" WHERE "NAME" = ? AND "TYPE$" = \'SCHOBJ\'', [[table.name]])
        delete_table(self.conn.store, self.server.key(table.name))

    def create_view(self, replace: bool) -> None:
        at = [t.upper for t in self.tokens].index("VIEW") + 1
        name = self.name_at(at)
        if self.tokens[at + 1].upper != "AS":
            raise Unsupported("a view with a column list")
        select = self.tokens[at + 2:]
        existing = self.lookup(name)
        if existing is not None:
            if not replace or existing.view_sql is None:
                raise fail(OBJECT_EXISTS, name)
            self.sqlite(f"DROP VIEW {self.dialect.sqlite_name(existing.name)}", [])
            self.unregister(existing)
        body = self.translate(select)
        self.sqlite(f"CREATE VIEW {self.dialect.sqlite_name(name)} AS {body}", [])
        probe = self.sqlite(f"SELECT * FROM {self.dialect.sqlite_name(name)} LIMIT 0", [])
        columns = [Column(self.dialect.result_name(d[0]), "VARCHAR") for d in probe.description or ()]
        self.register(Table(name, columns, view_sql=" ".join(t.text for t in select)))

    def drop(self, view: bool) -> None:
        at = 2
        if [t.upper for t in self.tokens[2:4]] == ["IF", "EXISTS"]:
            at = 4
        name = self.name_at(at)
        table = self.lookup(name)
        if table is None or (table.view_sql is not None) != view:
            if at == 4 and table is None:
                return
            raise fail(NO_SUCH_TABLE, name)
        self.sqlite(f"DROP {'VIEW' if view else 'TABLE'} {self.dialect.sqlite_name(table.name)}", [])
        self.unregister(table)

    def alter(self) -> None:
        table = self.table_or_fail(self.name_at(2))
        words = [t.upper for t in self.tokens[3:]]
        if words[:2] == ["RENAME", "TO"]:
            new = self.name_at(5)
            if self.lookup(new) is not None:
                raise fail(OBJECT_EXISTS, new)
            self.sqlite(f"ALTER TABLE {self.dialect.sqlite_name(table.name)} RENAME TO "
                        f"{self.dialect.sqlite_name(new)}", [])
            self.unregister(table)
            self.register(dataclasses.replace(table, name=new))
        elif words == ["ENABLE", "USING", "LONG", "ROW"]:
            table.long_row = True
            save_table(self.conn.store, self.server.key(table.name), table)
        else:
            raise Unsupported(f"ALTER TABLE ... {' '.join(words[:4])}")


class Cursor:
    """A dmPython cursor: rows come in batches of ``arraysize`` (dmPython's default 50, Cursor.c), one round trip
    each; a LOB value costs two more (vLob.c)."""

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        self.arraysize = 50
        self.bindarraysize = 1
        self.output_stream = 0
        self.description: list[Any] | None = None
        self.rowcount = -1
        self.lastrowid = None
        self.statement: str | None = None
        self._rows: list[Any] = []
        self._at = 0
        self._fetched = 0
        self.closed = False

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    next = __next__

    def close(self) -> None:
        self.closed = True
        self._rows = []

    def setinputsizes(self, *args: Any, **kwargs: Any) -> None:
        pass

    def setoutputsize(self, *args: Any, **kwargs: Any) -> None:
        pass

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        if isinstance(params, dict):
            raise Unsupported("named parameters")
        self._run("execute", sql, [list(params or ())])
        return self.connection.returned

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> Any:
        rows = [list(p) for p in seq]
        self._run("executemany", sql, rows)
        return self.connection.returned

    def _run(self, op: str, sql: str, rows: list[list[Any]]) -> None:
        if self.closed:
            raise _real.InterfaceError("cursor is closed")
        self.statement = sql
        result, description, count = self.connection.run(op, sql, rows)
        self._rows, self._at, self._fetched = result, 0, 0
        self.description = description
        self.rowcount = count

    def _take(self, n: int) -> list[Any]:
        if self.description is None:
            raise _real.ProgrammingError("no result set")
        server = self.connection.server
        out = []
        while len(out) < n and self._at < len(self._rows):
            if self._at == self._fetched:
                self.connection._alive()
                batch = min(self.arraysize or 1, len(self._rows) - self._at)
                server.record(Call(self.connection.id, "fetch", self.statement or "", batch))
                self._fetched += batch
            row = self._rows[self._at]
            self._at += 1
            values = []
            for value in row:
                if isinstance(value, Lob):
                    server.record(Call(self.connection.id, "lob_read", self.statement or ""))
                    value = value.value
                values.append(value)
            out.append(tuple(values))
        return out

    def fetchone(self) -> Any:
        rows = self._take(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._take(size or self.arraysize)

    def fetchall(self) -> list[Any]:
        return self._take(len(self._rows))
