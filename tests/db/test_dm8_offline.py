"""DM8 checks that need no server: the driver's constants, real connection failures (a closed port, a server that
accepts and never answers) with the real dmPython, and golden SQL compiled by the dmSQLAlchemy dialect."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, entry_points, version

import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

import lightning_dm8
from lightning_dm8 import Database, DatabaseUnavailableError
from lightning_dm8.db.backends.base import bind
from lightning_dm8.db.backends.dm import UNQUOTED_KEYWORDS, DMBackend, sockets_to
from lightning_dm8.db.driver_errors import translate
from lightning_dm8.db.fastpath import RangeQuery
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.reader import TableReader
from lightning_dm8.tables.registry import REGISTRY, DatasetInfo
from lightning_dm8.tables.schema import dataset_table, registry_table

dmPython = pytest.importorskip("dmPython")
dmPython = getattr(dmPython, "real_driver", dmPython)  # the real driver, even where the DM8 model is installed
pytest.importorskip("dmSQLAlchemy")

CLOSED = "127.0.0.1:1"
CIFAR = FeatureCodec("array", "|u1", (3, 32, 32))
LARGE = FeatureCodec("array", "<f4", (100, 100, 3))
DM = DMBackend()


def sql(statement: sa.sql.ClauseElement | sa.schema.ExecutableDDLElement, dialect: sa.Dialect) -> str:
    """Compiled SQL with whitespace collapsed, for comparing against the golden text."""
    return " ".join(str(statement.compile(dialect=dialect)).split())


@pytest.fixture(autouse=True)
def real_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the real dmPython (LIGHTNING_DM8_TEST_MODEL installs the model for the session)."""
    monkeypatch.setitem(sys.modules, "dmPython", dmPython)


@pytest.fixture(scope="module")
def dialect() -> sa.Dialect:
    db = Database("dm://u:p@h:5236")
    dialect = db.dialect
    # Rendering SQL must not have opened a connection (host "h" does not even resolve).
    assert db.engine.pool.checkedin() == 0 and db.engine.pool.checkedout() == 0
    assert dialect.server_version_info is None
    return dialect


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never sends a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for peer in accepted:
        peer.close()


def test_driver_constants() -> None:
    assert dmPython.paramstyle == "qmark"
    assert dmPython.apilevel == "2.0"
    assert dmPython.threadsafety == 1
    assert dmPython.PG_UTF8 == 1
    assert dmPython.PG_GB18030 == 10
    assert dmPython.LANGUAGE_EN == 1
    assert issubclass(dmPython.IntegrityError, dmPython.DatabaseError)
    assert hasattr(dmPython, "DmError")


def test_dialect_comes_from_the_official_package() -> None:
    dm = {e.name: e.value for e in entry_points(group="sqlalchemy.dialects") if e.name in ("dm", "dm.dmPython")}
    official = "dmSQLAlchemy.dmpython:DMDialect_dmPython"
    assert dm == {"dm": official, "dm.dmPython": official}
    with pytest.raises(PackageNotFoundError):
        version("dmPython-pure")  # a shim that shadows dmPython and the dialect's entry points


def test_connect_arguments() -> None:
    db = Database("dm://SYSDBA:p%40ss@h:5236/TRAIN", connect_timeout=7)
    _, kwargs = db.dialect.create_connect_args(db.sa_url)
    assert kwargs["password"] == "p@ss" and kwargs["user"] == "SYSDBA" and kwargs["port"] == 5236
    assert kwargs["autoCommit"] is False
    assert kwargs["connection_timeout"] == 0  # an execution timeout: long statements must not fail
    assert DM.connect_args(7.9) == {"local_code": 1, "login_timeout": 7, "lang_id": 1}
    assert DM.connect_args(0.2)["login_timeout"] == 1  # 0 would mean no bound at all
    assert "p@ss" not in db.url and "p%40ss" not in db.url


@pytest.mark.parametrize("url", [f"dm+dmPython://SYSDBA:pw@{CLOSED}", f"dm://SYSDBA:pw@{CLOSED}"],
                         ids=["explicit", "bare"])
def test_closed_port_is_unavailable_quickly(url: str) -> None:
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match=r"-70028") as info:
        Database(url, connect_timeout=1).ping()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "[code -70028]" in message and "SYSDBA:***@127.0.0.1:1" in message
    assert "Create SOCKET connection failure" in message  # lang_id=LANGUAGE_EN: English whatever the locale


def test_a_server_that_accepts_and_never_answers_fails_the_connect_within_connect_timeout(silent_server: int) -> None:
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match=r"\[code -70019\]"):
        Database(f"dm://SYSDBA:pw@127.0.0.1:{silent_server}", connect_timeout=2).ping()
    assert time.monotonic() - start < 2 + 1.5


def test_a_silent_server_fails_a_reader_within_max_wait(silent_server: int) -> None:
    """TableReader on the real driver: every connect is bounded by login_timeout, the retries by max_wait."""
    now = dt.datetime(2024, 1, 1)
    info = DatasetInfo("t", 10, CIFAR, "int", "", now, now)
    db = Database(f"dm://SYSDBA:pw@127.0.0.1:{silent_server}", connect_timeout=1)
    reader = TableReader(db, info, max_wait=3)
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match=r"-70019"):
        reader.fetch_rows(0, 10)
    assert time.monotonic() - start < 3 + 1.5


def test_shutting_down_its_socket_ends_a_dmpython_call_blocked_reading(silent_server: int) -> None:
    """What DMBackend.sever relies on: a dpi call blocked on a silent server (here a login with no timeout) returns
    -70019 as soon as its socket is shut down, which the project reports as DatabaseUnavailableError."""
    failed: list[BaseException] = []

    def login() -> None:
        try:
            dmPython.connect(user="SYSDBA", password="pw", server="127.0.0.1", port=silent_server, login_timeout=0)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failed.append(exc)

    blocked = threading.Thread(target=login, daemon=True)
    blocked.start()
    deadline = time.monotonic() + 5
    while not sockets_to(silent_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert blocked.is_alive() and not failed  # no timeout: it would wait forever
    (fd,) = sockets_to(silent_server)
    start = time.monotonic()
    with socket.socket(fileno=os.dup(fd)) as dup:
        dup.shutdown(socket.SHUT_RDWR)
    blocked.join(5)
    assert not blocked.is_alive() and time.monotonic() - start < 3
    assert failed[0].args[0].code == -70019
    assert isinstance(translate(DM, failed[0], "read"), DatabaseUnavailableError)


_IN_CHINESE_LOCALE = textwrap.dedent(
    """
    import json, sys, types, dmPython
    # Import only the database layer: the package's __init__ pulls in Lightning, which takes seconds to import.
    package = types.ModuleType("lightning_dm8")
    package.__path__ = [PACKAGE_DIR]
    sys.modules["lightning_dm8"] = package
    from lightning_dm8.db.backends import backend_named
    from lightning_dm8.db.engine import Database
    from lightning_dm8.db.driver_errors import translate
    out = {}
    try:
        dmPython.connect(user="SYSDBA", password="pw", server="127.0.0.1", port=1, login_timeout=1)
    except dmPython.DatabaseError as exc:
        error = translate(backend_named("dm"), exc, "connect")
        out["raw"] = [exc.args[0].code, exc.args[0].message, type(error).__name__, str(error)]
    try:
        Database("dm://SYSDBA:pw@127.0.0.1:1", connect_timeout=1).ping()
    except Exception as exc:
        out["database"] = [type(exc).__name__, str(exc)]
    print(json.dumps(out, ensure_ascii=False))
    """
)


def test_classification_does_not_depend_on_the_locale() -> None:
    env = {**os.environ, "LANG": "zh_CN.UTF-8", "LC_ALL": "zh_CN.UTF-8", "PYTHONIOENCODING": "utf-8"}
    script = f"PACKAGE_DIR = {os.path.dirname(lightning_dm8.__file__)!r}\n" + _IN_CHINESE_LOCALE
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=60, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    code, message, kind, text = out["raw"]
    assert code == -70028
    assert "创建SOCKET连接失败" in message  # without lang_id the driver answers in the locale's language
    assert kind == "DatabaseUnavailableError" and "[code -70028]" in text
    kind, text = out["database"]
    assert kind == "DatabaseUnavailableError" and "[code -70028]" in text


def test_cifar_table_ddl(dialect: sa.Dialect) -> None:
    table = dataset_table(sa.MetaData(), "cifar", CIFAR, "int", DM)
    assert sql(CreateTable(table), dialect) == (
        "CREATE TABLE cifar ( row_id BIGINT NOT NULL, features VARBINARY(3072) NOT NULL, label BIGINT NOT NULL, "
        "PRIMARY KEY (row_id) )"
    )


def test_large_samples_go_to_blob(dialect: sa.Dialect) -> None:
    ddl = sql(CreateTable(dataset_table(sa.MetaData(), "big", LARGE, "float", DM)), dialect)
    assert ddl == (
        "CREATE TABLE big ( row_id BIGINT NOT NULL, features BLOB NOT NULL, label FLOAT NOT NULL, "
        "PRIMARY KEY (row_id) )"
    )
    assert "IDENTITY" not in ddl


def test_registry_ddl_holds_any_codec(dialect: sa.Dialect) -> None:
    ddl = sql(CreateTable(registry_table(sa.MetaData())), dialect)
    assert "codec TEXT NOT NULL" in ddl  # a LOB: no length limit, no share of the in-row record
    assert ddl.startswith("CREATE TABLE ldm8_datasets ( name VARCHAR2(255 CHAR) NOT NULL, row_count BIGINT NOT NULL")


def test_insert_is_positional_without_returning(dialect: sa.Dialect) -> None:
    table = dataset_table(sa.MetaData(), "cifar", CIFAR, "int", DM)
    compiled = table.insert().compile(dialect=dialect)
    assert str(compiled) == "INSERT INTO cifar (row_id, features, label) VALUES (?, ?, ?)"
    assert list(compiled.positiontup) == ["row_id", "features", "label"]


def test_range_query(dialect: sa.Dialect) -> None:
    query = RangeQuery(dataset_table(sa.MetaData(), "cifar", CIFAR, "int", DM), DM, dialect)
    assert " ".join(query.sql.split()) == (
        "SELECT cifar.row_id, cifar.features, cifar.label FROM cifar "
        "WHERE cifar.row_id BETWEEN ? AND ? ORDER BY cifar.row_id"
    )
    assert bind(query.compiled, {"hi": 99, "lo": 10}) == (10, 99)


def test_registry_delete(dialect: sa.Dialect) -> None:
    compiled = REGISTRY.delete().where(REGISTRY.c.name == "x").compile(dialect=dialect)
    assert str(compiled) == "DELETE FROM ldm8_datasets WHERE ldm8_datasets.name = ?"
    assert list(compiled.positiontup) == ["name_1"]


RESERVED = ["level", "size", "rowid", "year", "value", "user", "comment", "date", "top", "rownum", "uid", "mode"]


def test_dmsqlalchemy_alone_leaves_rowid_and_year_unquoted() -> None:
    """Why the project extends the preparer: the vendor dialect on its own quotes LEVEL but not ROWID or YEAR."""
    from dmSQLAlchemy.dmpython import DMDialect_dmPython

    bare = DMDialect_dmPython().identifier_preparer
    assert bare.quote("level") == '"level"'
    assert {bare.quote(word) for word in UNQUOTED_KEYWORDS} == set(UNQUOTED_KEYWORDS)


@pytest.mark.parametrize("word", RESERVED)
def test_reserved_names_are_quoted_everywhere(dialect: sa.Dialect, word: str) -> None:
    codec = FeatureCodec("numeric", columns=(word, "x"))
    table = dataset_table(sa.MetaData(), word, codec, "int", DM)
    quoted = f'"{word}"'
    assert sql(CreateTable(table), dialect) == (
        f"CREATE TABLE {quoted} ( row_id BIGINT NOT NULL, {quoted} FLOAT NOT NULL, x FLOAT NOT NULL, "
        f"label BIGINT NOT NULL, PRIMARY KEY (row_id) )"
    )
    assert sql(table.insert(), dialect) == f"INSERT INTO {quoted} (row_id, {quoted}, x, label) VALUES (?, ?, ?, ?)"
    assert " ".join(RangeQuery(table, DM, dialect).sql.split()) == (
        f"SELECT {quoted}.row_id, {quoted}.{quoted}, {quoted}.x, {quoted}.label FROM {quoted} "
        f"WHERE {quoted}.row_id BETWEEN ? AND ? ORDER BY {quoted}.row_id"
    )
    # Data-dictionary lookups (has_table) use the same case-preserved name that the quoted DDL created.
    assert dialect.denormalize_name(word) == word
    assert dialect.denormalize_name("plain_name") == "PLAIN_NAME"
