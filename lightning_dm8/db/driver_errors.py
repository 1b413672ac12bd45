"""Map driver exceptions to the project's own, by error code wherever the driver gives one.

The code tables live with each backend (``db/backends/``); this module reads the code off an exception and builds
the message.
"""

from __future__ import annotations

from typing import Any

from lightning_dm8.db.backends import Backend
from lightning_dm8.errors import (
    AuthenticationError,
    DatabaseError,
    DatabaseUnavailableError,
    LightningDM8Error,
    TableExistsError,
    TableNotFoundError,
)


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


def _kind(backend: Backend, exc: BaseException) -> type[LightningDM8Error]:
    return backend.classify(exc, driver_code(exc)) or DatabaseError


_ADVICE = {
    DatabaseUnavailableError: "check that the server is running and that host and port in the URL are right",
    AuthenticationError: "check the user name and the password (set it in the environment variable "
    "LIGHTNING_DM8_PASSWORD rather than in the URL)",
    TableNotFoundError: "check the table name; `lightning-dm8 ls --url URL` lists the dataset tables",
    TableExistsError: 'pass if_exists="replace" or "append", or choose another name',
    DatabaseError: "see the driver's message above",
}


def translate(backend: Backend, exc: BaseException, where: str) -> LightningDM8Error:
    """Build the project's exception for a driver exception raised while doing ``where``."""
    original = backend.unwrap(getattr(exc, "orig", None) or exc)
    kind = _kind(backend, original)
    code = driver_code(original)
    code_text = f" [code {code}]" if code is not None else ""
    message = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    advice = backend.advice(kind) or _ADVICE[kind]
    return kind(f"{where}: {message}{code_text}; {advice}.")
