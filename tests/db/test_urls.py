"""URL parsing: default drivers, the password from the environment, masking wherever a URL is shown (by structure:
user-info, query string, unparseable URLs, passwords of any length)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from lightning_dm8.db.engine import Database
from lightning_dm8.db.urls import (
    PASSWORD_ENV,
    backend_of,
    mask_text,
    mask_url,
    mysql_driver,
    parse_url,
    url_without_password,
)
from lightning_dm8.errors import InvalidInputError


@pytest.mark.parametrize(
    ("url", "drivername", "backend"),
    [
        ("dm://SYSDBA:pw@127.0.0.1:5236", "dm+dmPython", "dm"),
        ("postgresql://u@h/db", "postgresql+psycopg", "postgresql"),
        ("postgres://u@h/db", "postgresql+psycopg", "postgresql"),
        ("mysql://u@h/db", f"mysql+{mysql_driver()}", "mysql"),
        ("mariadb://u@h/db", f"mariadb+{mysql_driver()}", "mysql"),
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
    assert parsed.drivername == f"mysql+{mysql_driver()}"
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


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        # a password in the query string (psycopg and PyMySQL take it from there)
        ("postgresql://u@h/db?password=Sup3rSecret&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("mysql://root:pw@h/db?passwd=Sup3rSecret", "mysql://root:***@h/db?passwd=***"),
        # a password of any length, masked where the URL structure puts it
        ("postgresql://u:x@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:ab@h/db", "postgresql://u:***@h/db"),
        # an unescaped '@' in the password: SQLAlchemy would split it in the wrong place; everything before the host
        ("postgresql://u:p@Sup3rSecret@h/db", "postgresql://***@h/db"),
        # an unparseable URL (a bad port): everything between :// and @ hidden, not the whole text printed
        ("postgresql://u:Sup3rSecret@h:notaport/db", "postgresql://***@h:notaport/db"),
        ("not a url", "not a url"),
        ("sqlite:///runs/a@b.db", "sqlite:///runs/a@b.db"),
        ("postgresql://u:***@h/db", "postgresql://u:***@h/db"),  # masking twice changes nothing
    ],
)
def test_mask_url_by_structure(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "Sup3rSecret" not in mask_url(url)


def test_mask_url_of_url_objects_too() -> None:
    url = URL.create("postgresql", "u", "x", "h", database="db", query={"password": "Sup3rSecret"})
    assert mask_url(url) == "postgresql://u:***@h/db?password=***"


def test_mask_text_masks_every_url_in_a_message() -> None:
    message = ("connection to postgresql://u:Sup3rSecret@h/db failed; retried mysql://r:y@h2/x "
               "(DSN host=h password=Sup3rSecret dbname=x) 'sqlite:///ok.db'")
    masked = mask_text(message)
    assert "Sup3rSecret" not in masked and ":y@" not in masked
    assert masked == ("connection to postgresql://u:***@h/db failed; retried mysql://r:***@h2/x "
                      "(DSN host=h password=*** dbname=x) 'sqlite:///ok.db'")
    assert mask_text("no secrets: a@b://c, x = 1") == "no secrets: a@b://c, x = 1"


def test_an_ambiguous_url_is_refused_before_it_connects() -> None:
    with pytest.raises(InvalidInputError, match="ambiguous: its password holds an '@'") as caught:
        parse_url("postgresql://u:p@Sup3rSecret@h/db")
    assert "Sup3rSecret" not in str(caught.value) and "%40" in str(caught.value)


def test_url_without_password_drops_query_secrets_too() -> None:
    assert url_without_password("mysql://root:pw@h/db?password=x&charset=utf8") == "mysql://root@h/db?charset=utf8"


@pytest.mark.parametrize("url", ["notaurl", "://x", "postgresql://alice:s3cret@db:notaport/train"],
                         ids=["no-scheme", "no-dialect", "bad-port"])
def test_a_url_that_does_not_parse_is_named_with_its_password_masked(url: str) -> None:
    expected = r"^the database URL '.*' is not a database URL; write it as sqlite:///path/to/file\.db, postgresql://"
    with pytest.raises(InvalidInputError, match=expected) as caught:
        Database(url)
    assert "s3cret" not in str(caught.value)
