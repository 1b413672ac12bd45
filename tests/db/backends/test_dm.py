"""The DM8 backend module: storage by page size, clustering and statistics, name matching under both CASE_SENSITIVE
modes, the error-code table, the missing-password message, and the socket behind each connection. Server behaviour
comes from the DM8 behaviour model (tests/dm8model)."""

from __future__ import annotations

import inspect
import re
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
import sqlalchemy as sa

pytest.importorskip("dmSQLAlchemy")
pytest.importorskip("dmPython")

from dm8model import DM8Server, serve  # noqa: E402
from dm8model.sqltext import fold  # noqa: E402

from lightning_dm8 import AuthenticationError, Database  # noqa: E402
from lightning_dm8.db.backends import dm as dm_module  # noqa: E402
from lightning_dm8.db.backends.base import Backend  # noqa: E402
from lightning_dm8.db.backends.dm import (  # noqa: E402
    IN_ROW_LIMITS,
    SOCKETS,
    DMBackend,
    peer_port,
    plan_rows,
)
from lightning_dm8.db.driver_errors import translate  # noqa: E402
from lightning_dm8.db.fastpath import RangeQuery  # noqa: E402
from lightning_dm8.db.urls import PASSWORD_ENV  # noqa: E402
from lightning_dm8.errors import (  # noqa: E402
    ConstraintViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    TableNotFoundError,
)
from lightning_dm8.tables.codecs import FeatureCodec  # noqa: E402
from lightning_dm8.tables.schema import dataset_table  # noqa: E402

DM = DMBackend()
PAGES = sorted(IN_ROW_LIMITS)


@pytest.fixture
def dm8(monkeypatch: pytest.MonkeyPatch) -> Iterator[DM8Server]:
    with serve(monkeypatch) as server:
        yield server


def table_for(codec: FeatureCodec, name: str = "d") -> sa.Table:
    return dataset_table(sa.MetaData(), name, codec, "int", DM)


# -- storage by page size -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "in_row_from"), [
    ((3, 32, 32), 8192),  # CIFAR, 3,072 bytes: in-row from 8 KB pages up
    ((64, 64), 16384),  # 4,096 bytes: long rows at 4 and 8 KB pages
    ((28, 28), 4096),  # 784 bytes: in-row everywhere
    ((2000,), 32768),  # 8,000 bytes: in-row only at 32 KB
    ((2047,), 32768),  # 8,188 bytes, VARBINARY's most: in-row only at 32 KB
])
def test_fixed_samples_stay_in_row_only_where_the_whole_row_fits(shape: tuple[int, ...], in_row_from: int) -> None:
    table = table_for(FeatureCodec("array", "|u1" if len(shape) > 1 else "<f4", shape))
    assert isinstance(table.c.features.type, sa.VARBINARY)
    for page in PAGES:
        plan = plan_rows(table, page)
        assert plan.long_row is (page < in_row_from), (page, plan)
        assert plan.clustered and plan.limit == IN_ROW_LIMITS[page]


def test_varying_and_larger_samples_go_to_blob_and_wide_numeric_tables_to_long_rows() -> None:
    for codec in (FeatureCodec("varlen", "<i8"), FeatureCodec("bytes"), FeatureCodec("array", "<f4", (100, 100, 3))):
        table = table_for(codec)
        assert isinstance(table.c.features.type, sa.LargeBinary)
        assert not plan_rows(table, 4096).long_row  # a BLOB is not part of the record's count
    wide = table_for(FeatureCodec("numeric", columns=tuple(f"c{i}" for i in range(600))))
    assert plan_rows(wide, 8192).long_row and not plan_rows(wide, 16384).long_row


def test_tables_are_created_clustered_with_long_rows_where_needed_and_the_page_asked_once(dm8: DM8Server) -> None:
    db = Database(dm8.url())
    images = table_for(FeatureCodec("array", "|u1", (64, 64)), "images")
    small = table_for(FeatureCodec("array", "|u1", (28, 28)), "small")
    with db.begin() as conn:
        db.backend.create_table(conn, images)
        db.backend.create_table(conn, small)
        db.backend.create_table(conn, small, checkfirst=True)  # exists: nothing sent but the catalogue lookup
    created = [s for s in dm8.statements() if s.startswith(("CREATE", "SELECT PAGE"))]
    assert created == [
        "SELECT PAGE()",
        "CREATE TABLE images ( row_id BIGINT NOT NULL, features VARBINARY(4096) NOT NULL, label BIGINT NOT NULL, "
        "CLUSTER PRIMARY KEY (row_id) ) STORAGE(USING LONG ROW)",
        "CREATE TABLE small ( row_id BIGINT NOT NULL, features VARBINARY(784) NOT NULL, label BIGINT NOT NULL, "
        "CLUSTER PRIMARY KEY (row_id) )",
    ]
    assert dm8.table("IMAGES").long_row and not dm8.table("SMALL").long_row
    db.dispose()


def test_long_rows_cost_no_round_trips_where_blob_costs_two_per_row(dm8: DM8Server) -> None:
    """Why long rows rather than BLOB when a row does not fit in-row: read 256 rows of 4,096-byte samples."""
    db = Database(dm8.url())
    long_rows = table_for(FeatureCodec("array", "|u1", (64, 64)), "long_rows")
    blobs = sa.Table("blobs", sa.MetaData(), sa.Column("row_id", sa.BigInteger, primary_key=True, autoincrement=False),
                     sa.Column("features", sa.LargeBinary, nullable=False), sa.Column("label", sa.BigInteger))
    rows = [(i, bytes([i % 256]) * 4096, i) for i in range(256)]
    with db.begin() as conn:
        for table in (long_rows, blobs):
            db.backend.create_table(conn, table)
            db.backend.insert_rows(conn, table, rows)
    cost = {}
    raw = db.engine.raw_connection()
    for table in (long_rows, blobs):
        before = dm8.round_trips
        got = RangeQuery(table, DM, db.dialect).fetch(raw.driver_connection, 0, 255)
        cost[table.name] = dm8.round_trips - before
        assert [bytes(r[1]) for r in got] == [r[1] for r in rows]
    raw.close()
    # execute + 6 fetches of 50 rows + rollback; the BLOB table adds get_length and read for every value.
    assert cost == {"long_rows": 8, "blobs": 8 + 2 * 256}
    db.dispose()


def test_statistics_are_gathered_for_the_name_the_catalogue_holds(dm8: DM8Server) -> None:
    db = Database(dm8.url())
    with db.begin() as conn:
        for name in ("plain_name", "level"):  # "level" is reserved: quoted, stored in lower case
            db.backend.create_table(conn, table_for(FeatureCodec("array", "|u1", (4,)), name))
            db.backend.analyze_table(conn, name)
    assert dm8.statistics == ["PLAIN_NAME", "level"]
    calls = [c for c in dm8.calls if c.op == "execute" and "GATHER_TABLE_STATS" in c.sql]
    assert {c.text for c in calls} == {"CALL DBMS_STATS.GATHER_TABLE_STATS(?, ?, NULL, 100, TRUE)"}
    db.dispose()


# -- names ----------------------------------------------------------------------------------------------------------

def test_query_columns_are_matched_as_the_server_folds_them() -> None:
    from dmSQLAlchemy.dmpython import DMDialect_dmPython

    dialect = DMDialect_dmPython()
    dialect.case_sensitive = True  # as dmSQLAlchemy sets it from the connection
    assert DM.find_column(dialect, "label", ["x", "label"]) == "label"
    assert DM.find_column(dialect, "LABEL", ["x", "label"]) == "label"  # unquoted LABEL is label
    assert DM.find_column(dialect, "Label", ["x", "label"]) is None  # mixed case is another name
    dialect.case_sensitive = False
    assert DM.find_column(dialect, "label", ["ID", "LABEL"]) == "LABEL"
    assert DM.find_column(dialect, "label", ["label", "LABEL"]) == "label"  # an exact match first
    assert DM.find_column(dialect, "x", ["ID", "LABEL"]) is None
    assert Backend().find_column(dialect, "label", ["LABEL"]) is None  # other backends: exact


# -- errors ---------------------------------------------------------------------------------------------------------

def _dm_error(code: int) -> BaseException:
    import dmPython

    payload = SimpleNamespace(code=code, message=f"[CODE:{code}]x", offset=0, context="")
    kind = dmPython.IntegrityError if -6612 <= code <= -6601 else dmPython.DatabaseError
    return kind(payload)


@pytest.mark.parametrize(("code", "kind"), [
    (-70028, DatabaseUnavailableError), (-70019, DatabaseUnavailableError), (-70025, DatabaseUnavailableError),
    (-6010, DatabaseUnavailableError), (-2501, AuthenticationError), (-2106, TableNotFoundError),
    (-6602, ConstraintViolationError), (-6612, ConstraintViolationError), (-2665, DatabaseError),
])
def test_driver_codes_map_to_the_projects_errors(code: int, kind: type) -> None:
    error = translate(DM, _dm_error(code), "write")
    assert type(error) is kind and f"[code {code}]" in str(error)


def test_every_code_in_the_table_names_its_source_or_is_marked() -> None:
    source = inspect.getsource(dm_module)
    for codes, _kind in DM.error_codes:
        if codes is dm_module.INTEGRITY:
            assert "Environment_RaiseError" in source
            continue
        for code in codes:
            (line,) = [ln for ln in source.splitlines() if re.match(rf"\s*{code},\s*#", ln)]
            assert re.search(r"dmSQLAlchemy|dmPython|UNSOURCED|THIRD-PARTY", line), line


def test_a_unique_key_taken_by_another_writer_is_a_constraint_violation(dm8: DM8Server) -> None:
    db = Database(dm8.url())
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE k (id BIGINT NOT NULL, PRIMARY KEY (id))")
        conn.exec_driver_sql("INSERT INTO k (id) VALUES (1)")
    with pytest.raises(ConstraintViolationError, match="same key at the same moment"):
        with db.begin("insert") as conn:
            conn.exec_driver_sql("INSERT INTO k (id) VALUES (1)")
    db.dispose()


def test_a_url_without_password_names_the_environment_variable(dm8: DM8Server, monkeypatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(AuthenticationError, match=PASSWORD_ENV) as info:
        Database(dm8.url(password=None)).ping()
    assert "NoneType" not in str(info.value)
    assert not [c for c in dm8.calls if c.op == "connect"]  # refused before the driver is asked
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    Database(dm8.url(password=None)).ping()


def test_string_errors_of_the_driver_keep_their_message() -> None:
    """dmSQLAlchemy wraps dmPython's string errors in a DBAPIError without the original (dmpython.py connect)."""
    wrapped = sa.exc.DBAPIError("host or server can only set one", 0, None)  # type: ignore[arg-type]
    error = translate(DM, wrapped, "connect")
    assert "host or server can only set one" in str(error) and "NoneType" not in str(error)


# -- the socket under a connection ------------------------------------------------------------------------------------

def test_each_connection_knows_its_socket_and_sever_shuts_it(dm8: DM8Server) -> None:
    if not DM.cuts_hung_reads:
        pytest.skip("sockets are found through /proc/self/fd (Linux)")
    db = Database(dm8.url())
    raw = db.engine.raw_connection()
    driver = raw.driver_connection
    fd = DM.socket_fd(driver)
    assert fd is not None and peer_port(fd) == dm8.port
    DM.sever(driver)
    with pytest.raises(OSError):
        driver.sock.send(b"x")  # shut down under the driver
    raw.invalidate()
    assert DM.socket_fd(driver) is None  # forgotten when the pool closed it
    db.dispose()


def test_a_descriptor_reused_for_another_socket_is_never_shut_down() -> None:
    if not DM.cuts_hung_reads:
        pytest.skip("sockets are found through /proc/self/fd (Linux)")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    holder = SimpleNamespace()
    connection = SOCKETS.connect(lambda: setattr(holder, "s", socket.create_connection(("127.0.0.1", port))) or holder,
                                 port)
    fd = SOCKETS.fd(connection)
    assert fd == holder.s.fileno()
    holder.s.close()
    other = socket.socket()  # likely takes the same descriptor number, another inode
    try:
        assert SOCKETS.fd(connection) is None
    finally:
        other.close()
        listener.close()
        SOCKETS.forget(connection)


def test_fold_matches_the_dialect() -> None:
    from dmSQLAlchemy.dmpython import DMDialect_dmPython

    dialect = DMDialect_dmPython()
    for name in ("row_id", "ldm8_d_1", "t_abc"):
        assert fold(name) == dialect.denormalize_name(name)
    assert np.asarray(PAGES).tolist() == [4096, 8192, 16384, 32768]
