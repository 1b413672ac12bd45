"""Driver exceptions -> the project's exceptions, by error code (never by the message's language on DM8)."""

from __future__ import annotations

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from lightning_dm8.db.backends import backend_named
from lightning_dm8.db.driver_errors import driver_code, translate
from lightning_dm8.errors import (
    AuthenticationError,
    DatabaseError,
    DatabaseUnavailableError,
    TableExistsError,
    TableNotFoundError,
)

dmPython = pytest.importorskip("dmPython")


class DmErrorLike:
    """What dmPython puts in ``exc.args[0]``: ``code`` (int) and ``message``; ``str()`` is the message.
    (``dmPython.DmError`` itself refuses to be instantiated from Python.)"""

    def __init__(self, code: int, message: str) -> None:
        self.code, self.message = code, message

    def __str__(self) -> str:
        return self.message


def dm_error(code: int, message: str, cls: type[BaseException] | None = None) -> BaseException:
    return (cls or dmPython.DatabaseError)(DmErrorLike(code, f"[CODE:{code}]{message}"))


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        (-70028, "Create SOCKET connection failure", DatabaseUnavailableError),
        (-70028, "创建SOCKET连接失败", DatabaseUnavailableError),
        (-70019, "网络通信异常", DatabaseUnavailableError),
        (-70025, "Connection closed", DatabaseUnavailableError),
        (-6010, "Session has been killed", DatabaseUnavailableError),
        (-2501, "用户名或密码错误", AuthenticationError),
        (-2501, "Invalid username or password", AuthenticationError),
        (-2106, "无效的表或视图名[T1]", TableNotFoundError),
        (-2007, "语法分析出错", DatabaseError),
    ],
)
def test_dm_codes_map_whatever_the_language(code: int, message: str, kind: type) -> None:
    exc = dm_error(code, message)
    assert driver_code(exc) == code
    error = translate(backend_named("dm"), exc, "connect on dm+dmPython://SYSDBA:***@h:5236")
    assert type(error) is kind
    assert f"[code {code}]" in str(error)
    assert str(error).startswith("connect on dm+dmPython://SYSDBA:***@h:5236: ")


def test_dm_message_text_never_decides_the_class() -> None:
    """An English 'password' message with a non-auth code stays generic: classification is by code only."""
    exc = dm_error(-6602, "violate unique constraint; password", dmPython.IntegrityError)
    error = translate(backend_named("dm"), exc, "insert")
    assert isinstance(error, DatabaseError) and not isinstance(error, AuthenticationError)  # a key conflict, by code
    assert "[code -6602]" in str(error)


def test_dm_argument_errors_carry_a_plain_string() -> None:
    exc = dmPython.NotSupportedError("password cannot be empty")
    assert driver_code(exc) is None
    error = translate(backend_named("dm"), exc, "connect")
    assert type(error) is DatabaseError
    assert str(error) == "connect: password cannot be empty; see the driver's message above."


@pytest.mark.parametrize(
    ("backend", "exc", "kind", "code"),
    [
        ("mysql", pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1'"),
         DatabaseUnavailableError, 2003),
        ("mysql", pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
         DatabaseUnavailableError, 2013),
        ("mysql", pymysql.err.OperationalError(1045, "Access denied for user 'x'@'localhost'"), AuthenticationError,
         1045),
        ("mysql", pymysql.err.ProgrammingError(1146, "Table 'test.nope' doesn't exist"), TableNotFoundError, 1146),
        ("mysql", pymysql.err.OperationalError(1050, "Table 't' already exists"), TableExistsError, 1050),
        ("mysql", pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'PRIMARY'"), DatabaseError, 1062),
        ("postgresql", psycopg.errors.UndefinedTable('relation "nope" does not exist'), TableNotFoundError, "42P01"),
        ("postgresql", psycopg.errors.DuplicateTable('relation "t" already exists'), TableExistsError, "42P07"),
        ("postgresql", psycopg.errors.InvalidPassword("password authentication failed"), AuthenticationError, "28P01"),
        ("postgresql", psycopg.errors.InvalidAuthorizationSpecification("role does not exist"), AuthenticationError,
         "28000"),
        ("postgresql", psycopg.errors.AdminShutdown("terminating connection"), DatabaseUnavailableError, "57P01"),
        ("postgresql", psycopg.errors.UniqueViolation("duplicate key"), DatabaseError, "23505"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_server_errors_by_code(backend: str, exc: BaseException, kind: type, code: int | str) -> None:
    """MySQL by errno, PostgreSQL by SQLSTATE."""
    error = translate(backend_named(backend), exc, "query")
    assert type(error) is kind
    assert f"[code {code}]" in str(error)


def test_postgresql_connection_failure_without_sqlstate() -> None:
    """psycopg reports a refused connection as OperationalError without SQLSTATE."""
    refused = psycopg.OperationalError("connection failed: Connection refused")
    error = translate(backend_named("postgresql"), refused, "connect")
    assert type(error) is DatabaseUnavailableError
    assert "[code" not in str(error)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("no such table: nope", TableNotFoundError),
        ("unable to open database file", DatabaseUnavailableError),
        ("UNIQUE constraint failed: t.row_id", DatabaseError),
    ],
)
def test_sqlite_errors_by_message(message: str, kind: type) -> None:
    import sqlite3

    assert type(translate(backend_named("sqlite"), sqlite3.OperationalError(message), "query")) is kind


def test_sqlalchemy_wrapper_is_unwrapped() -> None:
    orig = pymysql.err.ProgrammingError(1146, "Table 'test.nope' doesn't exist")
    wrapped = sa.exc.ProgrammingError("SELECT * FROM nope", {}, orig)
    error = translate(backend_named("mysql"), wrapped, "read")
    assert type(error) is TableNotFoundError
    assert str(error).startswith("read: (1146, \"Table 'test.nope' doesn't exist\") [code 1146]; check the table name")


def test_multi_line_driver_messages_keep_the_first_line() -> None:
    exc = psycopg.errors.UndefinedTable('relation "nope" does not exist\nLINE 1: SELECT * FROM nope\n        ^')
    assert str(translate(backend_named("postgresql"), exc, "read")) == (
        'read: relation "nope" does not exist [code 42P01]; check the table name; '
        "`lightning-dm8 ls --url URL` lists the dataset tables."
    )
