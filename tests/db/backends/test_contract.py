"""The backend contract: the same checks against every database module.

Offline checks run for all four backends (each dialect compiles without a server; DM8 through dmSQLAlchemy). The
live checks run against the real SQLite file, PostgreSQL and MariaDB servers, and DM8 when
``LIGHTNING_DM8_TEST_URL`` names one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateTable

from lightning_dm8 import Database
from lightning_dm8.db.backends import BACKENDS, Backend, backend_named
from lightning_dm8.db.blobs import SLICE_SIZE
from lightning_dm8.db.fastpath import RangeQuery
from lightning_dm8.db.names import name_problem
from lightning_dm8.errors import InvalidInputError, LightningDM8Error, TableNotFoundError
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.schema import dataset_table

OFFLINE_URLS = {
    "sqlite": "sqlite://",
    "postgresql": "postgresql://u@h/db",
    "mysql": "mysql://u@h/db",
    "dm": "dm://u:p@h:5236",
}
CODECS = [FeatureCodec("array", "|u1", (3, 32, 32)), FeatureCodec("varlen", "<i8"), FeatureCodec("text"),
          FeatureCodec("bytes"), FeatureCodec("numeric", columns=("a", "b"))]


@pytest.fixture(params=sorted(BACKENDS))
def offline(request: pytest.FixtureRequest) -> Database:
    if request.param == "dm":
        pytest.importorskip("dmSQLAlchemy")
    return Database(OFFLINE_URLS[request.param])


def test_every_backend_is_registered_under_its_name() -> None:
    assert sorted(BACKENDS) == ["dm", "mysql", "postgresql", "sqlite"]
    for name, backend in BACKENDS.items():
        assert isinstance(backend, Backend) and backend.name == name and backend.title and backend.driver_module


def test_an_unknown_database_is_refused_clearly() -> None:
    with pytest.raises(InvalidInputError, match=r"unsupported database 'oracle'; lightning_dm8 supports dm, mysql"):
        backend_named("oracle")


def test_the_url_picks_the_backend(offline: Database) -> None:
    assert offline.backend is BACKENDS[offline.backend.name]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.kind)
def test_dataset_tables_compile_for_every_dialect(offline: Database, codec: FeatureCodec) -> None:
    table = dataset_table(sa.MetaData(), "d", codec, "int", offline.backend)
    ddl = str(CreateTable(table).compile(dialect=offline.dialect))
    assert "row_id" in ddl.lower() and "primary key" in ddl.lower()
    query = RangeQuery(table, offline.backend, offline.dialect)
    assert "between" in query.sql.lower() and "order by" in query.sql.lower()


@pytest.mark.parametrize("name", ["ok_name", "数据集", "a%b", "ORDER", "x y"])
def test_ordinary_names_are_accepted_everywhere(offline: Database, name: str) -> None:
    assert name_problem(offline.backend, name) is None


@pytest.mark.parametrize(("name", "problem"), [
    ("", "it is empty"), ("a\x00b", "NUL"), ("a\nb", "control character"), ("a\x1b[31mred", "control character"),
    ("x" * 121, "use at most 120"),
])
def test_names_no_backend_can_use_are_refused(offline: Database, name: str, problem: str) -> None:
    found = name_problem(offline.backend, name)
    assert found is not None and problem in found


def test_every_backend_has_a_length_rule(offline: Database) -> None:
    """Each server's own limit, in its own unit, is named by its module (SQLite has none)."""
    long = "数" * 100
    expected = {"sqlite": None, "postgresql": "63 bytes", "mysql": "64 characters", "dm": "128 bytes"}[
        offline.backend.name]
    found = offline.backend.name_problem(long)
    assert (found is None) if expected is None else (expected in (found or ""))


def test_driver_errors_are_recognised_by_module(offline: Database) -> None:
    class Foreign(Exception):
        pass

    assert not offline.backend.is_driver_error(Foreign("x"))
    module = offline.backend.driver_packages[0]
    fake = type("OperationalError", (Exception,), {"__module__": f"{module}.errors"})
    assert offline.backend.is_driver_error(fake("x"))


# -- live: the real servers ----------------------------------------------------------------------------------------


@pytest.fixture
def live(db: Database) -> Database:
    return db


@pytest.fixture
def names(live: Database) -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    with live.begin("cleanup") as conn:
        for name in created:
            sa.Table(name, sa.MetaData()).drop(conn, checkfirst=True)


def _fresh(names: list[str]) -> str:
    name = f"c_{uuid.uuid4().hex[:10]}"
    names.append(name)
    return name


def test_create_tune_fill_analyze_rename_and_read(live: Database, names: list[str]) -> None:
    backend = live.backend
    codec = FeatureCodec("array", "|u1", (16,))
    first, second = _fresh(names), _fresh(names)
    table = dataset_table(sa.MetaData(), first, codec, "int", backend)
    rows = [(i, bytes([i]) * 16, i % 3) for i in range(50)]
    with live.begin("create") as conn:
        table.create(conn)
        backend.tune_binary_column(conn, first, "features", codec.fixed_size)
        backend.insert_rows(conn, table, rows)
    with live.begin("analyze") as conn:
        backend.analyze_table(conn, first)
    with live.begin("rename") as conn:
        backend.rename_table(conn, first, second)
        assert sa.inspect(conn).has_table(second) and not sa.inspect(conn).has_table(first)
    renamed = dataset_table(sa.MetaData(), second, codec, "int", backend)
    query = RangeQuery(renamed, backend, live.dialect)
    raw = live.engine.raw_connection()
    try:
        got = query.fetch(raw.driver_connection, 10, 19)
    finally:
        raw.close()
    assert [(int(r[0]), bytes(r[1]), int(r[2])) for r in got] == rows[10:20]


def test_a_missing_table_is_table_not_found(live: Database) -> None:
    with pytest.raises(TableNotFoundError, match=r"select from a missing table on .*; check the table name"):
        with live.connect("select from a missing table") as conn:
            conn.execute(sa.select(sa.column("x")).select_from(sa.table(f"missing_{uuid.uuid4().hex[:8]}")))


def test_chunks_read_back_whole_whatever_the_strategy(live: Database, names: list[str]) -> None:
    """Each backend's chunk opener returns exactly the stored bytes, in several slices where it slices."""
    name = _fresh(names)
    chunks = sa.Table(name, sa.MetaData(), sa.Column("n", sa.BigInteger, primary_key=True, autoincrement=False),
                      sa.Column("data", live.backend.binary_type(None), nullable=False))
    live.backend.tune_chunk_table(chunks)
    payload = bytes(range(256)) * ((SLICE_SIZE * 2 + 1000) // 256)
    with live.begin("store") as conn:
        chunks.create(conn)
        live.backend.insert_rows(conn, chunks, [(0, payload)])
    with live.connect("load") as conn:
        driver = conn.connection.driver_connection
        cursor = live.backend.raw_cursor(driver)

        def prepare(*columns: sa.ColumnElement) -> object:
            compiled = sa.select(*columns).where(chunks.c.n == sa.bindparam("n")).compile(dialect=conn.dialect)
            from lightning_dm8.db.backends.base import bind

            def fetch(**values: object) -> object:
                cursor.execute(str(compiled), bind(compiled, values))
                return cursor.fetchone()

            return fetch

        opener = live.backend.chunk_opener(prepare, chunks.c.data, driver)
        opened = opener(0)
        assert opened is not None
        length, pieces = opened
        data = b"".join(bytes(p) for p in pieces)
        assert opener(1) is None
        cursor.close()
    assert length == len(payload) and data == payload


def test_chunk_size_limit_fits_the_server(live: Database) -> None:
    with live.connect("limit") as conn:
        limit = live.backend.chunk_size_limit(conn)
    if live.backend.name == "mysql":
        assert limit is not None and 64 << 10 <= limit
    else:
        assert limit is None


def test_a_hung_read_is_cut_where_the_backend_says_it_can(live: Database) -> None:
    """``sever`` ends a read blocked on the server: a sleeping query returns with a lost-connection error at once."""
    if not live.backend.cuts_hung_reads:
        pytest.skip(f"{live.backend.title} reads cannot hang on a server (or are bounded by driver timeouts)")
    sleeps = {"postgresql": "SELECT pg_sleep(30)", "mysql": "SELECT SLEEP(30)"}
    if live.backend.name not in sleeps:  # DM8's cut-off is shown against a silent listener (tests/db/backends)
        pytest.skip(f"no verified statement that sleeps on {live.backend.title}")
    sleep = sleeps[live.backend.name]
    raw = live.engine.raw_connection()
    driver = raw.driver_connection
    timer = threading.Timer(0.5, live.backend.sever, (driver,))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(LightningDM8Error), live.errors("sleep"):
            cursor = driver.cursor()
            cursor.execute(sleep)
            cursor.fetchall()
    finally:
        timer.cancel()
        raw.invalidate()
    assert time.monotonic() - start < 10


def test_local_preparation(live: Database, tmp_path) -> None:
    if live.backend.name != "sqlite":
        assert live.backend.exists_locally(live.sa_url)
        assert not live.backend.prepare_data_per_node
        return
    url = make_url(f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}")
    assert not live.backend.exists_locally(url)
    live.backend.prepare_local(url)
    assert (tmp_path / "deep" / "er").is_dir()
    assert live.backend.prepare_data_per_node
