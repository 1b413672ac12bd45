"""Database URLs: default drivers, the password from the environment, and masking wherever a URL is shown.

Masking works by URL structure: the password of the user-info part and secret-looking query parameters
(``password=``, ``passwd=``, ``pwd=``, ``secret=``, ``token=``, ``passphrase=``) become ``***`` whatever their
length, and nothing outside those places changes. A URL that does not parse, or whose user-info is ambiguous (an
unescaped ``@`` inside the password), is masked conservatively: everything between ``://`` and the last ``@``.
"""

from __future__ import annotations

import importlib
import os
import re

from sqlalchemy.engine import URL, make_url

from lightning_dm8.errors import InvalidInputError

PASSWORD_ENV = "LIGHTNING_DM8_PASSWORD"
"""Environment variable holding the database password, so that it never has to be written into YAML."""

URL_ENV = "LIGHTNING_DM8_URL"
"""Environment variable holding the database URL the command line uses when ``--url`` is not given, so that no
password has to be typed on a command line (where ``ps`` shows it to every user of the machine)."""

MASK = "***"

_DEFAULT_DRIVERS = {"dm": "dm+dmPython", "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
"""The driver of a driver-less URL; MySQL's and MariaDB's is chosen by :func:`mysql_driver`."""

_SECRET_KEY = re.compile(r"[\w.-]*(?:password|passwd|pwd|secret|token|passphrase)[\w.-]*", re.IGNORECASE)
_SECRET_PAIR = re.compile(rf"(?P<key>{_SECRET_KEY.pattern})=(?P<value>[^&\s'\"#]*)", re.IGNORECASE)
"""``key=value`` with a secret-looking key: in a query string, a libpq-style DSN or free text."""
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*")


def parse_url(url: str | URL) -> URL:
    """Parse ``url``, pick the supported driver when none is named, and add the password from the environment.

    The password is taken from ``LIGHTNING_DM8_PASSWORD`` only when the URL itself carries none. A host holding an
    ``@`` is refused: the password had an unescaped ``@``, the URL was split in the wrong place, and the rest of
    the password would be sent (and echoed in the driver's messages) as a host name.
    """
    parsed = readable_url(url)
    if "@" in (parsed.host or ""):
        raise InvalidInputError(
            f"the database URL {mask_url(url)} is ambiguous: its password holds an '@'. Write it as %40 in the URL, "
            f"or leave the password out of the URL and set {PASSWORD_ENV}"
        )
    if parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername=f"{parsed.drivername}+{mysql_driver()}")
    elif parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    if parsed.password is None and backend_of(parsed) != "sqlite" and os.environ.get(PASSWORD_ENV):
        parsed = parsed.set(password=os.environ[PASSWORD_ENV])
    return parsed


def mysql_driver() -> str:
    """The driver a ``mysql://`` or ``mariadb://`` URL without one uses: mysqlclient (``mysqldb``) when it can be
    imported, else PyMySQL.

    mysqlclient is the faster reader: on MariaDB, a loader epoch without cache read 120,000 token rows at 128,653
    rows/s against PyMySQL's 87,011 (50,000 CIFAR-sized rows: 76,561 against 69,642), and a full-table read of
    token rows 3.4x as fast. It needs libmariadb-dev to build, so it is an extra of its own (``[mysqlclient]``) and
    PyMySQL (``[mysql]``) is the fallback. Imported rather than looked up, so that a build whose shared library is
    missing counts as not installed.
    """
    try:
        importlib.import_module("MySQLdb")
    except ImportError:
        return "pymysql"
    return "mysqldb"


def readable_url(url: str | URL, what: str = "the database URL") -> URL:
    """``url`` parsed, or an error naming ``what`` (``"--url"``, say), the URL (its password masked) and the forms a
    URL takes, instead of SQLAlchemy's "Could not parse" or a bare ``int()`` error for a port that is not a number.

    Raises:
        InvalidInputError: ``url`` is not a URL.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
        parsed.port  # noqa: B018  (a bad port only fails when read)
    except Exception as exc:  # ArgumentError, ValueError: what SQLAlchemy raises for text that is not a URL
        raise InvalidInputError(
            f"{what} {mask_url(str(url))!r} is not a database URL; write it as sqlite:///path/to/file.db, "
            f"postgresql://user@host:5432/db, mysql://user@host:3306/db or dm://user@host:5236"
        ) from exc
    return parsed


def backend_of(url: URL) -> str:
    """The backend family of a URL: ``dm``, ``postgresql``, ``mysql`` (MariaDB too) or ``sqlite``."""
    name = url.get_backend_name()
    return "mysql" if name == "mariadb" else ("postgresql" if name == "postgres" else name)


def mask_url(url: str | URL) -> str:
    """The URL as text with every secret replaced by ``***``: the only form that may be logged, printed or stored.

    Never raises: text that is not a URL comes back with only its ``password=...`` pairs masked.
    """
    if isinstance(url, URL):
        text = url.render_as_string(hide_password=True)
        if "@" in (url.host or ""):  # parsed from a password with an unescaped '@': the host holds the rest of it
            text = _hide_everything_before_host(text)
    else:
        text = _hide_user_info(str(url))
    return _mask_pairs(text)


def mask_text(text: str) -> str:
    """``text`` (a message, a config value) with every URL in it masked as :func:`mask_url` does, and every
    ``password=...``-like pair masked too."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda match: _hide_user_info(match.group(0)), text)
    return _mask_pairs(text) if "=" in text else text


def url_without_password(url: str | URL) -> str:
    """The URL as text with the password removed entirely (and secret query parameters with it): safe to persist,
    and completed again from the environment."""
    parsed = make_url(url) if isinstance(url, str) else url
    query = {key: value for key, value in parsed.query.items() if not _SECRET_KEY.fullmatch(key)}
    # Not ``parsed.set(password=None)``: URL.set ignores None arguments and would keep the password.
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database, query)
    return bare.render_as_string(hide_password=False)


def _hide_user_info(text: str) -> str:
    """Mask the password of one URL's user-info; conservatively (all of it) when the URL does not parse cleanly."""
    scheme, separator, rest = text.partition("://")
    if not separator or "@" not in rest:
        return text
    try:
        parsed = make_url(text)
        parsed.port  # noqa: B018  (a bad port only fails when read)
    except Exception:  # not a URL SQLAlchemy understands: hide everything that could be user-info
        return _hide_everything_before_host(text)
    if "@" in (parsed.host or ""):
        # An '@' left in the host means the password held an unescaped '@': SQLAlchemy split it in the wrong place.
        return _hide_everything_before_host(text)
    if parsed.password is None or parsed.password == MASK:
        return text  # nothing to hide (or masked already): keep the text as it was written
    return parsed.render_as_string(hide_password=True)


def _hide_everything_before_host(text: str) -> str:
    scheme, _, rest = text.partition("://")
    return f"{scheme}://{MASK}@{rest.rpartition('@')[2]}"


def _mask_pairs(text: str) -> str:
    return _SECRET_PAIR.sub(lambda match: f"{match.group('key')}={MASK}", text)
