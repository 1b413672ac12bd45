"""URL parsing: default drivers, the password from the environment, masking wherever a URL is shown."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from lightning_dm8.db.urls import PASSWORD_ENV, backend_of, mask_url, parse_url, url_without_password


@pytest.mark.parametrize(
    ("url", "drivername", "backend"),
    [
        ("dm://SYSDBA:pw@127.0.0.1:5236", "dm+dmPython", "dm"),
        ("postgresql://u@h/db", "postgresql+psycopg", "postgresql"),
        ("postgres://u@h/db", "postgresql+psycopg", "postgresql"),
        ("mysql://u@h/db", "mysql+pymysql", "mysql"),
        ("mariadb://u@h/db", "mariadb+pymysql", "mysql"),
        ("sqlite:///x.db", "sqlite", "sqlite"),
        ("postgresql+pg8000://u@h/db", "postgresql+pg8000", "postgresql"),
        ("dm+dmPython://u:p@h:5236", "dm+dmPython", "dm"),
    ],
)
def test_default_driver_and_backend(url: str, drivername: str, backend: str) -> None:
    parsed = parse_url(url)
    assert parsed.drivername == drivername
    assert backend_of(parsed) == backend


def test_parse_url_accepts_url_objects() -> None:
    url = URL.create("mysql", username="u", password="p@ss/:", host="h", database="db")
    parsed = parse_url(url)
    assert parsed.drivername == "mysql+pymysql"
    assert parsed.password == "p@ss/:"


def test_password_from_environment_fills_a_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert parse_url("postgresql://u@h/db").password == "from-env"
    assert parse_url("postgresql://u:in-url@h/db").password == "in-url"


def test_sqlite_never_takes_the_environment_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert parse_url("sqlite:///x.db").password is None


def test_no_password_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert parse_url("mysql://u@h/db").password is None


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql+psycopg://user:s3cret@h:5432/db")
    assert "s3cret" not in masked
    assert masked == "postgresql+psycopg://user:***@h:5432/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"


def test_url_without_password_drops_it_entirely() -> None:
    text = url_without_password("dm+dmPython://SYSDBA:s3cret@h:5236")
    assert text == "dm+dmPython://SYSDBA@h:5236"
    assert "***" not in text
