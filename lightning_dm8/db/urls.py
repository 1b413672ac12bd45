"""Database URLs: default drivers, the password from the environment, and masking wherever a URL is shown."""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url

PASSWORD_ENV = "LIGHTNING_DM8_PASSWORD"
"""Environment variable holding the database password, so that it never has to be written into YAML."""

_DEFAULT_DRIVERS = {
    "dm": "dm+dmPython",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}

BACKEND_EXTRAS = {"dm": "dm8", "postgresql": "postgres", "mysql": "mysql", "sqlite": ""}


def parse_url(url: str | URL) -> URL:
    """Parse ``url``, pick the supported driver when none is named, and add the password from the environment.

    The password is taken from ``LIGHTNING_DM8_PASSWORD`` only when the URL itself carries none.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    if "+" not in parsed.drivername and parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    if parsed.password is None and backend_of(parsed) != "sqlite" and os.environ.get(PASSWORD_ENV):
        parsed = parsed.set(password=os.environ[PASSWORD_ENV])
    return parsed


def backend_of(url: URL) -> str:
    """The backend family of a URL: ``dm``, ``postgresql``, ``mysql`` (MariaDB too) or ``sqlite``."""
    name = url.get_backend_name()
    return "mysql" if name == "mariadb" else ("postgresql" if name == "postgres" else name)


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``: the only form that may be logged or stored."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def url_without_password(url: str | URL) -> str:
    """The URL as text with the password removed entirely: safe to persist, and completed again from the environment."""
    parsed = make_url(url) if isinstance(url, str) else url
    # Not ``parsed.set(password=None)``: URL.set ignores None arguments and would keep the password.
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query)
    return bare.render_as_string(hide_password=False)
