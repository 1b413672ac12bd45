"""Map driver exceptions to the project's own, by error code wherever the driver gives one.

DM8 messages follow the client locale, so DM8 errors are classified by dmPython's numeric code only.
"""

from __future__ import annotations

from typing import Any

from lightning_dm8.errors import (
    AuthenticationError,
    DatabaseError,
    DatabaseUnavailableError,
    LightningDM8Error,
    TableExistsError,
    TableNotFoundError,
)

# dmPython codes (DmError.code).
DM_UNAVAILABLE = {-70028, -70019, -70025, -6010}
DM_AUTH = {-2501}
DM_NO_TABLE = {-2106}
DM_INTEGRITY = set(range(-6612, -6600))

# MySQL / MariaDB client and server error numbers.
MYSQL_UNAVAILABLE = {2002, 2003, 2005, 2006, 2013, 2055, 1927, 1053}
MYSQL_CLOSED = 0
"""PyMySQL's ``InterfaceError(0, '')``: anything asked of a connection it already saw die (a rollback after a lost
connection, above all)."""
MYSQL_AUTH = {1044, 1045, 1698}
MYSQL_NO_TABLE = {1146}
MYSQL_TABLE_EXISTS = {1050}

# PostgreSQL SQLSTATE codes.
PG_UNAVAILABLE = {"08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03"}
PG_AUTH = {"28000", "28P01"}
PG_NO_TABLE = {"42P01"}
PG_TABLE_EXISTS = {"42P07"}


def driver_code(exc: BaseException) -> int | str | None:
    """The error code a driver exception carries: dmPython ``DmError.code``, MySQL errno or PostgreSQL SQLSTATE.

    Numeric codes come first: PyMySQL also sets ``sqlstate``, which is coarser than its errno.
    """
    args = getattr(exc, "args", ())
    first: Any = args[0] if args else None
    code = getattr(first, "code", None)
    if isinstance(code, int):
        return code
    if isinstance(first, int):
        return first
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate if isinstance(sqlstate, str) else None


_CODE_TABLES: dict[str, list[tuple[set[int] | set[str], type[LightningDM8Error]]]] = {
    "dm": [(DM_UNAVAILABLE, DatabaseUnavailableError), (DM_AUTH, AuthenticationError), (DM_NO_TABLE, TableNotFoundError)],
    "mysql": [(MYSQL_UNAVAILABLE, DatabaseUnavailableError), (MYSQL_AUTH, AuthenticationError),
              (MYSQL_NO_TABLE, TableNotFoundError), (MYSQL_TABLE_EXISTS, TableExistsError)],
    "postgresql": [(PG_AUTH, AuthenticationError), (PG_NO_TABLE, TableNotFoundError),
                   (PG_TABLE_EXISTS, TableExistsError), (PG_UNAVAILABLE, DatabaseUnavailableError)],
}


def _closed_mysql_connection(backend: str, exc: BaseException) -> bool:
    return backend == "mysql" and type(exc).__name__ == "InterfaceError" and driver_code(exc) == MYSQL_CLOSED


def _kind(backend: str, exc: BaseException) -> type[LightningDM8Error]:
    code = driver_code(exc)
    if _closed_mysql_connection(backend, exc):
        return DatabaseUnavailableError
    for codes, kind in _CODE_TABLES.get(backend, []):
        if code in codes:
            return kind
    text = str(exc).lower()
    if backend == "postgresql":
        # libpq reports connection-time failures without a SQLSTATE.
        if "password authentication failed" in text:
            return AuthenticationError
        # (psycopg's ConnectionTimeout, raised when connect_timeout expires, is an OperationalError too.)
        if code is None and any(cls.__name__ == "OperationalError" for cls in type(exc).__mro__):
            return DatabaseUnavailableError
    if backend == "sqlite":
        if "no such table" in text:
            return TableNotFoundError
        if "unable to open database file" in text:
            return DatabaseUnavailableError
    return DatabaseError


_ADVICE = {
    DatabaseUnavailableError: "check that the server is running and that host and port in the URL are right",
    AuthenticationError: "check the user name and the password (set it in the environment variable "
    "LIGHTNING_DM8_PASSWORD rather than in the URL)",
    TableNotFoundError: "check the table name; `lightning-dm8 ls URL` lists the dataset tables",
    TableExistsError: 'pass if_exists="replace" or "append", or choose another name',
    DatabaseError: "see the driver's message above",
}


def translate(backend: str, exc: BaseException, where: str) -> LightningDM8Error:
    """Build the project's exception for a driver exception raised while doing ``where``."""
    original = getattr(exc, "orig", None) or exc
    if _closed_mysql_connection(backend, original):
        # Raised while handling the error that says why the connection died (e.g. 2013 "Lost connection"): report that.
        context = getattr(original.__context__, "orig", None) or original.__context__
        if context is not None and type(context).__module__.split(".")[0] == "pymysql":
            original = context
    kind = _kind(backend, original)
    code = driver_code(original)
    code_text = f" [code {code}]" if code is not None else ""
    message = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    advice = _ADVICE[kind]
    if backend == "sqlite" and kind is DatabaseUnavailableError:
        advice = "check that the database file's folder exists and is writable"
    return kind(f"{where}: {message}{code_text}; {advice}.")
