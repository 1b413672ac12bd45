"""Fault 6: hostile identifiers and URLs.

Table names full of quotes, semicolons, comment markers, reserved words, spaces and non-ASCII go through
write_arrays -> DatasetTable -> drop on every backend, in a database of their own so that the test can see that
nothing else changed. Passwords with URL-special characters, URL-escaped, are parsed back exactly and never appear
in a repr, a masked URL, the hyperparameters or any error message (a closed port: no server involved).
"""

from __future__ import annotations

import traceback
import urllib.parse
import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from ldm8_backends import MYSQL_URL, PG_URL

from lightning_dm8 import (
    AuthenticationError,
    Database,
    DatabaseUnavailableError,
    DatasetTable,
    DM8DataModule,
    InvalidInputError,
    write_arrays,
)
from lightning_dm8.db.names import name_problem
from lightning_dm8.db.urls import mask_url, url_without_password
from lightning_dm8.tables import registry
from reliability.support import free_port

RESERVED = ["LEVEL", "SIZE", "ROWID", "SELECT", "TABLE", "ORDER", "order", "rowid", "user", "group", "from"]
FRAGMENTS = RESERVED + [
    "'", '"', "`", ";", "--", "/*", "*/", " ", "%", "%s", "?", ":x", "$1", "\\", ".", ",", "(", ")",
    "'; DROP TABLE canary; --", "é", "数据", "Ж", "ß", "a", "Z", "_", "7",
]
NAMES = st.one_of(st.sampled_from(RESERVED), st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("".join))
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mysql"])
def own_database(request, tmp_path_factory):
    """A database created for this test alone (a fresh SQLite file, or a new PostgreSQL/MariaDB database)."""
    backend = request.param
    if backend == "sqlite":
        yield Database(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'h.db'}")
        return
    server = sa.engine.make_url(PG_URL if backend == "postgresql" else MYSQL_URL)
    name = f"ldm8_hostile_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    db = Database(server.set(database=name))
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}" + (" WITH (FORCE)" if backend == "postgresql" else "")))
        admin.dispose()


def snapshot(db: Database) -> tuple[list[str], list[tuple], list[tuple]]:
    """Every table and view, every registry row and the canary's rows."""
    with db.connect("snapshot") as conn:
        inspector = sa.inspect(conn)
        tables = sorted(inspector.get_table_names() + inspector.get_view_names())
        entries = sorted(tuple(r) for r in conn.execute(sa.select(registry.REGISTRY)).all())
        canary = sorted(tuple(r) for r in conn.execute(sa.text("SELECT id, note FROM canary")).all())
    return tables, entries, canary


@given(name=NAMES)
@example(name="'; DROP TABLE canary; --")
@example(name='a"b`c\'d')
@example(name="ORDER")
@example(name="数据 /* x */ é")
@SETTINGS
def test_hostile_table_names_round_trip_and_touch_nothing_else(own_database, name) -> None:
    db = own_database
    with db.begin("setup") as conn:
        registry.create_registry(conn)
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS canary (id INTEGER PRIMARY KEY, note VARCHAR(20))"))
        if not conn.execute(sa.text("SELECT count(*) FROM canary")).scalar():
            conn.execute(sa.text("INSERT INTO canary VALUES (1, 'untouched')"))
    before = snapshot(db)
    features = np.arange(7 * 3, dtype=np.float32).reshape(7, 3) * (len(name) + 1)
    labels = np.arange(7) * 3

    if name_problem(db.backend, name) is not None:
        with pytest.raises(InvalidInputError):  # refused up front, naming the reason; nothing was created
            write_arrays(db, name, features, labels, progress=False)
        assert snapshot(db) == before
        return

    info = write_arrays(db, name, features, labels, progress=False)
    assert info.name == name and info.row_count == 7
    tables, entries, canary = snapshot(db)
    expected = set(before[0]) | {name, info.physical, registry.VERSIONS.name}
    assert set(tables) == expected, f"tables changed beyond {name!r}: {set(tables) ^ expected}"
    assert canary == before[2] and len(entries) == len(before[1]) + 1

    table = DatasetTable(db, name)
    assert len(table) == 7 and repr(name) in repr(table)
    block = table.read_range(0, 7)
    np.testing.assert_array_equal(block.features, features)
    np.testing.assert_array_equal(block.labels, labels)
    assert table.validate().row_count == 7
    table.drop()
    after = snapshot(db)
    assert set(after[0]) - {registry.VERSIONS.name} == set(before[0]) - {registry.VERSIONS.name}, (
        f"dropping {name!r} changed something else")
    assert after[1:] == before[1:]


PASSWORD_CHARS = list("@:/%#?&=+;'\"\\$!*()[]{}<>|~^`, é密") + ["%40", "%2F", "\t"]
PASSWORDS = st.lists(st.sampled_from(PASSWORD_CHARS), min_size=1, max_size=12).map(lambda p: "S3cr" + "".join(p) + "t")


def assert_hidden(password: str, *texts: str) -> None:
    forms = {password, urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password)}
    for text in texts:
        for form in forms:
            assert form not in text, f"the password ({form!r}) appears in: {text}"


def is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def full_error(exc: BaseException) -> str:
    """Everything a user would see of the error: the message and every chained cause, with tracebacks."""
    return "".join(traceback.format_exception(exc))


@given(password=PASSWORDS, backend=st.sampled_from(["postgresql", "mysql"]))
@settings(max_examples=25, deadline=None)
def test_escaped_passwords_are_parsed_and_never_shown(password, backend) -> None:
    assume(backend != "mysql" or is_latin1(password))  # PyMySQL sends passwords as Latin-1: see the test below
    driver = "postgresql+psycopg" if backend == "postgresql" else "mysql+pymysql"
    url = f"{driver}://trainer:{urllib.parse.quote(password, safe='')}@127.0.0.1:{free_port()}/db?connect_timeout=2"
    db = Database(url, connect_timeout=2)
    assert db.sa_url.password == password and db.sa_url.username == "trainer"
    with pytest.raises(DatabaseUnavailableError) as raised:
        db.ping()
    dm = DM8DataModule(url, train_table="t", cache_dir=None, progress=False)
    with pytest.raises(DatabaseUnavailableError) as from_dm:
        dm.prepare_data()
    assert_hidden(password, repr(db), db.url, mask_url(url), url_without_password(url), str(dict(dm.hparams)),
                  repr(dm.db), full_error(raised.value), full_error(from_dm.value))
    assert "***" in db.url


@given(password=PASSWORDS)
@settings(max_examples=10, deadline=None)
def test_wrong_password_on_a_real_server_is_refused_without_showing_it(password) -> None:
    """MariaDB's root has no password here: any password is wrong, and the refusal must not echo it."""
    assume(is_latin1(password))
    server = sa.engine.make_url(MYSQL_URL)
    url = f"mysql+pymysql://{server.username}:{urllib.parse.quote(password, safe='')}@{server.host}:{server.port}/" \
          f"{server.database}"
    db = Database(url)
    with pytest.raises(AuthenticationError) as raised:
        db.ping()
    assert_hidden(password, full_error(raised.value))
    db.dispose()


def test_mysql_password_outside_latin1_fails_before_connecting_without_showing_it() -> None:
    """Known limitation of PyMySQL: it encodes the password as Latin-1, so such a password cannot be used at all.
    The failure is the driver's ``UnicodeEncodeError``, raised before any connection, and it does not show the
    password."""
    password = "S3cr密码t@:/"
    db = Database(f"mysql+pymysql://trainer:{urllib.parse.quote(password, safe='')}@127.0.0.1:{free_port()}/db")
    assert db.sa_url.password == password
    with pytest.raises(UnicodeEncodeError) as raised:
        db.ping()
    assert_hidden(password, full_error(raised.value), repr(db), db.url)
