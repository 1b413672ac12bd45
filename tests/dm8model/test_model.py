"""The DM8 behaviour model itself: each modelled behaviour, checked through the driver interface dmSQLAlchemy uses."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

pytest.importorskip("dmSQLAlchemy")
dmPython = pytest.importorskip("dmPython")

from dm8model import DM8Server  # noqa: E402
from dm8model.driver import module  # noqa: E402
from dm8model.server import IN_ROW_LIMITS, ROW_OVERHEAD  # noqa: E402


def connect(server: DM8Server, **kwargs: Any) -> Any:
    options = {"user": "SYSDBA", "password": "pw", "host": "127.0.0.1", "port": server.port, "autoCommit": False,
               **kwargs}
    return module(server).connect(**options)


def run(conn: Any, sql: str, params: Any = None) -> list[Any]:
    cursor = conn.cursor()
    cursor.execute(sql, params or ())
    rows = cursor.fetchall() if cursor.description else []
    cursor.close()
    return rows


def code_of(info: pytest.ExceptionInfo[BaseException]) -> int:
    return info.value.args[0].code


@pytest.fixture
def server() -> Any:
    server = DM8Server()
    yield server
    server.close()


def test_ddl_commits_the_open_transaction(server: DM8Server) -> None:
    a, b = connect(server), connect(server)
    run(a, "CREATE TABLE t (id BIGINT NOT NULL, PRIMARY KEY (id))")
    run(a, "INSERT INTO t (id) VALUES (?)", (1,))
    assert run(b, "SELECT COUNT(*) FROM t") == [(0,)]
    b.rollback()
    run(a, "CREATE TABLE other (id BIGINT)")  # commits the insert, then itself
    a.rollback()
    assert run(b, "SELECT COUNT(*) FROM t") == [(1,)]
    run(a, "INSERT INTO t (id) VALUES (?)", (2,))
    a.rollback()  # plain DML still rolls back
    b.rollback()
    assert run(b, "SELECT id FROM t") == [(1,)]


@pytest.mark.parametrize("page_size", sorted(IN_ROW_LIMITS))
def test_a_record_over_the_in_row_limit_fails_without_long_rows(page_size: int) -> None:
    server = DM8Server(page_size)
    try:
        conn = connect(server)
        assert run(conn, "SELECT PAGE()") == [(page_size,)]
        budget = IN_ROW_LIMITS[page_size] - ROW_OVERHEAD - 8 - 2  # a BIGINT key, 2 length bytes for v
        v = min(budget, 8188)
        w = budget - v - 2 if budget > v else None  # 32 KB pages: a second column takes the rest
        insert = "INSERT INTO {} (id, v, w) VALUES (?, ?, ?)"
        for table, storage in (("plain", ""), ("wide", " STORAGE(USING LONG ROW)")):
            run(conn, f"CREATE TABLE {table} (id BIGINT NOT NULL, v VARBINARY(8188), w VARBINARY(8188), "
                      f"PRIMARY KEY (id)){storage}")
            run(conn, insert.format(table), (1, b"x" * v, None if w is None else b"y" * w))
        with pytest.raises(dmPython.DatabaseError) as info:  # one byte more
            run(conn, insert.format("plain"), (2, b"x" * v, b"y" * (w + 1) if w is not None else b"y"))
        assert code_of(info) == -2665
        run(conn, insert.format("wide"), (2, b"x" * 8188, b"y" * 8188))
        run(conn, "ALTER TABLE plain ENABLE USING LONG ROW")
        run(conn, insert.format("plain"), (2, b"x" * 8188, b"y" * 8188))
        conn.commit()
        assert [len(r[1]) for r in server.rows("plain")] == [v, 8188]
    finally:
        server.close()


def test_lob_columns_do_not_count_and_values_respect_declared_lengths(server: DM8Server) -> None:
    conn = connect(server)
    run(conn, "CREATE TABLE t (id BIGINT, b BLOB, v VARBINARY(4))")
    run(conn, "INSERT INTO t (id, b, v) VALUES (?, ?, ?)", (1, b"y" * 100_000, b"abcd"))
    with pytest.raises(dmPython.DatabaseError):
        run(conn, "INSERT INTO t (id, b, v) VALUES (?, ?, ?)", (2, b"", b"abcde"))


def test_bit_values_come_back_as_bool_and_smallint_values_as_int(server: DM8Server) -> None:
    """dmPython var.c: DSQL_BIT -> vt_Boolean (a bool), DSQL_SMALLINT -> vt_Integer; a bool binds as 0 or 1."""
    conn = connect(server)
    run(conn, "CREATE TABLE t (id BIGINT, b BIT, s SMALLINT)")
    conn.cursor().executemany("INSERT INTO t (id, b, s) VALUES (?, ?, ?)", [(1, True, True), (2, False, False)])
    rows = run(conn, "SELECT id, b, s FROM t ORDER BY id")
    assert rows == [(1, True, 1), (2, False, 0)]
    assert [type(v) for v in rows[0]] == [int, bool, int]


def test_unquoted_names_fold_to_upper_case_and_the_catalogue_says_so(server: DM8Server) -> None:
    conn = connect(server)
    run(conn, 'CREATE TABLE t_x (row_id BIGINT, "level" BIGINT, "Mixed" BIGINT)')
    run(conn, 'CREATE TABLE "level" (a BIGINT)')
    run(conn, "CREATE TABLE level2 (a BIGINT)")
    tables = {r[0] for r in run(conn, "SELECT table_name FROM all_tables WHERE owner = ?", ("SYSDBA",))}
    assert tables == {"T_X", "level", "LEVEL2"}
    cursor = conn.cursor()
    cursor.execute('SELECT row_id, "level", "Mixed" FROM T_X')
    assert [d[0] for d in cursor.description] == ["ROW_ID", "level", "Mixed"]
    with pytest.raises(dmPython.DatabaseError) as info:
        run(conn, 'SELECT * FROM "t_x"')  # quoted: the lower-case name, which does not exist
    assert code_of(info) == -2106
    assert conn.str_case_sensitive


def test_case_insensitive_servers_keep_names_as_written_and_compare_without_case() -> None:
    server = DM8Server(case_sensitive=False)
    try:
        conn = connect(server)
        assert not conn.str_case_sensitive
        run(conn, "CREATE TABLE Raw_Src (ID BIGINT, label BIGINT, name VARCHAR(10))")
        run(conn, "INSERT INTO raw_src (id, LABEL, name) VALUES (?, ?, ?)", (1, 2, "Cats"))
        assert {r[0] for r in run(conn, "SELECT table_name FROM all_tables")} == {"Raw_Src"}
        cursor = conn.cursor()
        cursor.execute("SELECT * FROM RAW_SRC WHERE name = 'cats'")
        assert [d[0] for d in cursor.description] == ["ID", "label", "name"]
        assert cursor.fetchall() == [(1, 2, "Cats")]
        with pytest.raises(dmPython.DatabaseError):
            run(conn, 'CREATE TABLE "RAW_SRC" (a BIGINT)')  # the same name, whatever its case
    finally:
        server.close()


def test_integrity_errors_and_missing_objects_carry_dmpython_codes(server: DM8Server) -> None:
    conn = connect(server)
    run(conn, "CREATE TABLE t (id BIGINT NOT NULL, PRIMARY KEY (id))")
    run(conn, "INSERT INTO t (id) VALUES (?)", (1,))
    with pytest.raises(dmPython.IntegrityError) as info:
        run(conn, "INSERT INTO t (id) VALUES (?)", (1,))
    assert -6612 <= code_of(info) <= -6601
    with pytest.raises(dmPython.DatabaseError) as info:
        run(conn, "DROP TABLE missing")
    assert code_of(info) == -2106
    run(conn, "DROP TABLE IF EXISTS missing")
    with pytest.raises(dmPython.NotSupportedError, match="password cannot be empty"):
        connect(server, password=None)


def test_connections_fail_as_dmpython_does_when_the_server_is_gone_or_silent(server: DM8Server) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(dmPython.DatabaseError) as info:
        connect(server, port=closed)
    assert code_of(info) == -70028
    conn = connect(server)
    run(conn, "SELECT 1 FROM DUAL")
    server.lose_connections()
    with pytest.raises(dmPython.DatabaseError) as info:
        run(conn, "SELECT 1 FROM DUAL")
    assert code_of(info) == -70019
    server.hung.set()
    start = time.monotonic()
    with pytest.raises(dmPython.DatabaseError) as info:
        connect(server, login_timeout=1)
    assert code_of(info) == -70019 and time.monotonic() - start < 3


def test_a_hung_statement_ends_when_its_socket_is_shut_down(server: DM8Server) -> None:
    conn = connect(server)
    server.hung.set()
    failed: list[BaseException] = []

    def read() -> None:
        try:
            run(conn, "SELECT 1 FROM DUAL")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failed.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive() and not failed  # blocked on the socket
    conn.sock.shutdown(socket.SHUT_RDWR)
    reader.join(5)
    assert not reader.is_alive() and failed[0].args[0].code == -70019


def test_round_trips_count_fetch_batches_and_two_per_lob_value(server: DM8Server) -> None:
    conn = connect(server)
    run(conn, "CREATE TABLE v (id BIGINT, x VARBINARY(100))")
    run(conn, "CREATE TABLE b (id BIGINT, x BLOB)")
    for table in ("v", "b"):
        cursor = conn.cursor()
        cursor.executemany(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(i, b"z" * 100) for i in range(120)])
    conn.commit()
    cost = {}
    for table in ("v", "b"):
        before = server.round_trips
        rows = run(conn, f"SELECT id, x FROM {table} ORDER BY id")
        assert len(rows) == 120 and rows[5] == (5, b"z" * 100)
        cost[table] = server.round_trips - before
    assert cost == {"v": 1 + 3, "b": 1 + 3 + 2 * 120}  # execute, 3 batches of 50, and 2 per BLOB value
