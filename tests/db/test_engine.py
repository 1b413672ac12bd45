"""Database: lazy per-process engines, driver errors mapped to the project's own, passwords never shown."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import pickle
import time

import pytest
import sqlalchemy as sa

from lightning_dm8 import (
    AuthenticationError,
    Database,
    DatabaseUnavailableError,
    MissingDriverError,
    write_arrays,
)
from lightning_dm8.db.backends import backend_named
from lightning_dm8.db.urls import PASSWORD_ENV, mysql_driver

MYSQL_HOST = "127.0.0.1:3306/test"
CONNECTION_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT connection_id()"}


def _connection_id(db: Database) -> int | None:
    """The server's id for the pooled connection (None on SQLite, which has no server)."""
    if db.backend.name not in CONNECTION_ID:
        return None
    with db.connect() as conn:
        return int(conn.execute(sa.text(CONNECTION_ID[db.backend.name])).scalar_one())


def test_nothing_connects_until_used(db_url: str) -> None:
    db = Database(db_url)
    assert db._engine.peek() is None
    db.ping()
    assert db._engine.peek() is not None
    db.dispose()
    assert db._engine.peek() is None


def test_url_and_repr_mask_the_password() -> None:
    db = Database("postgresql://alice:s3cret@127.0.0.1:5432/test")
    assert "s3cret" not in db.url and "s3cret" not in repr(db)
    assert db.url == "postgresql+psycopg://alice:***@127.0.0.1:5432/test"
    assert repr(db) == "Database('postgresql+psycopg://alice:***@127.0.0.1:5432/test')"
    assert db.sa_url.password == "s3cret"


def test_environment_password_is_used_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "env-pw-4711")
    db = Database(f"mysql://root@{MYSQL_HOST}")
    assert db.sa_url.password == "env-pw-4711"
    assert db.url == f"mysql+{mysql_driver()}://root:***@{MYSQL_HOST}"
    # root has no password on the test server, so the one from the environment is refused: proof it was sent.
    with pytest.raises(AuthenticationError, match=r"Access denied for user 'root'") as info:
        db.ping()
    assert "env-pw-4711" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres:pw-closed@127.0.0.1:1/test", "mysql://root:pw-closed@127.0.0.1:1/test"],
    ids=["postgresql", "mysql"],
)
def test_unreachable_server(url: str) -> None:
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError,
                       match=r"connect on .*127\.0\.0\.1:1.*check that the server is running"):
        Database(url, connect_timeout=2).ping()
    assert time.monotonic() - start < 10


def test_unreachable_server_message_never_shows_the_password() -> None:
    with pytest.raises(DatabaseUnavailableError) as info:
        write_arrays("postgresql://postgres:pw-hidden-1@127.0.0.1:1/test", "t_never", [[1]], [1], progress=False)
    assert "pw-hidden-1" not in str(info.value)
    assert "postgres:***@127.0.0.1:1" in str(info.value)


@pytest.mark.parametrize(
    ("user", "password"),
    [("ldm8_no_such_user", "whatever-pw-1"), ("root", "wrong-pw-for-root")],
    ids=["unknown-user", "wrong-password"],
)
def test_wrong_credentials_on_mariadb(user: str, password: str) -> None:
    url = f"mysql+pymysql://{user}:{password}@{MYSQL_HOST}"
    refused = rf"Access denied for user '{user}'.*\[code 1045\]; check the user name"
    with pytest.raises(AuthenticationError, match=refused) as info:
        Database(url).ping()
    text = str(info.value)
    assert password not in text and password not in str(info.value.__cause__)
    assert f"{user}:***@" in text


# (dialect+driver, its module): drivers SQLAlchemy knows but the project does not install.
_FOREIGN_DRIVERS = {
    "postgresql": [("postgresql+pg8000", "pg8000"), ("postgresql+psycopg2", "psycopg2"),
                   ("postgresql+pygresql", "pgdb")],
    "mysql": [("mysql+mysqlconnector", "mysql.connector"), ("mysql+cymysql", "cymysql"), ("mysql+mysqldb", "MySQLdb")],
}


def _absent_driver(backend: str) -> tuple[str, str]:
    """A driver of ``backend`` whose module is not installed here (the venv is shared, so check rather than assume)."""
    for driver, module in _FOREIGN_DRIVERS[backend]:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            return driver, module
    pytest.skip(f"every alternative {backend} driver is installed")


@pytest.mark.parametrize(("backend", "extra"), [("postgresql", "postgres"), ("mysql", "mysql")])
def test_missing_driver_names_the_module_and_the_extra(backend: str, extra: str) -> None:
    driver, module = _absent_driver(backend)
    top = module.split(".")[0]
    with pytest.raises(MissingDriverError, match=rf"No module named '{top}.*install {top}.*lightning-dm8\[{extra}\]"):
        Database(f"{driver}://u:pw@127.0.0.1/test").ping()


def test_sqlite_file_that_cannot_be_opened(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"
    with pytest.raises(DatabaseUnavailableError, match="unable to open database file"):
        Database(url).ping()


def test_other_exceptions_pass_through_untouched(db_url: str) -> None:
    db = Database(db_url)
    with pytest.raises(KeyError, match="not a driver error"), db.errors("anything"):
        raise KeyError("not a driver error")


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("dm", {"local_code": 1, "login_timeout": 7, "lang_id": 1}),
        ("postgresql", {"connect_timeout": 7}),
        ("mysql", {"connect_timeout": 7}),
        ("sqlite", {"timeout": 7.5}),
    ],
)
def test_connect_args(backend: str, expected: dict) -> None:
    assert backend_named(backend).connect_args(7.5) == expected


def test_connect_timeout_never_rounds_to_zero() -> None:
    assert backend_named("postgresql").connect_args(0.2) == {"connect_timeout": 1}


def test_sqlite_files_use_wal(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    memory = Database("sqlite://")
    with memory.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "memory"


def test_pickling_after_use_drops_the_engine(db_url: str) -> None:
    db = Database(db_url)
    db.ping()
    clone = pickle.loads(pickle.dumps(db))
    assert clone._engine.peek() is None
    assert clone.url == db.url
    clone.ping()
    assert clone.engine is not db.engine


def _child(db: Database, payload: bytes | None, parent_engine: sa.Engine, queue) -> None:
    """Runs in the forked child: use the inherited (or unpickled) Database and report which engine it used."""
    try:
        if payload is not None:
            db = pickle.loads(payload)
        engine = db.engine
        queue.put((os.getpid(), db._engine._pid, engine is parent_engine, _connection_id(db)))
    except BaseException as exc:  # report instead of leaving the parent waiting on queue.get()
        queue.put(repr(exc))


@pytest.mark.parametrize("pickled", [False, True], ids=["inherited", "pickled"])
def test_forked_child_opens_its_own_engine(db_url: str, pickled: bool) -> None:
    db = Database(db_url)
    parent_id = _connection_id(db)
    db.ping()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    payload = pickle.dumps(db) if pickled else None
    process = context.Process(target=_child, args=(db, payload, db.engine, queue))
    process.start()
    result = queue.get(timeout=60)
    process.join(60)
    assert not isinstance(result, str), result
    child_pid, engine_pid, shares_engine, child_id = result
    assert child_pid != os.getpid()
    assert engine_pid == child_pid
    assert not shares_engine
    if parent_id is not None:
        assert child_id != parent_id
        # The child's new engine must not have closed the parent's pooled connection (shared socket after fork).
        assert _connection_id(db) == parent_id
    db.dispose()
