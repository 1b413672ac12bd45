"""Record datasets on DM8: each column type through dmSQLAlchemy, reserved and mixed-case column names quoted in every
statement, long rows chosen by the whole record's width, and records written and read back end to end on the DM8
behaviour model (tests/dm8model). The round trip at the end runs on every backend, DM8 included when
``LIGHTNING_DM8_TEST_URL`` names a server (or ``LIGHTNING_DM8_TEST_MODEL=1``)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from dm8model import conftest as model_fixtures
from sqlalchemy.schema import CreateTable

from lightning_dm8 import Database, DatabaseError, DatasetTable, write_query
from lightning_dm8.db.backends.dm import IN_ROW_LIMITS, VARBINARY_LIMIT, DMBackend, plan_rows, plan_storage
from lightning_dm8.db.fastpath import RangeQuery
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.record import column_codec, encode_row, record_codec
from lightning_dm8.tables.schema import dataset_table
from lightning_dm8.tables.writer import write_rows

DM = DMBackend()
N = 12


def sql(statement: Any, dialect: sa.Dialect) -> str:
    """Compiled SQL, whitespace collapsed."""
    return " ".join(str(statement.compile(dialect=dialect)).split())


def every_kind(n: int = N, *, image: tuple[int, ...] = (3, 4)) -> tuple[dict[str, Any], dict[str, Any]]:
    """Feature and label columns of every kind: array, varlen, text, bytes, int, float, bool; int and vector labels."""
    features = {
        "image": np.arange(n * int(np.prod(image)), dtype=np.uint8).reshape(n, *image) % 251,
        "tokens": [np.arange(i % 5, dtype=np.int32) - 2 for i in range(n)],
        "title": [f"t{i}é名" for i in range(n)],
        "raw": [bytes([i % 256]) * (i % 4) for i in range(n)],
        "count": np.arange(n, dtype=np.int64) * (2**40) - 7,
        "price": np.linspace(-1.5, 1.0, n) / 3,
        "ok": np.arange(n) % 3 == 0,
    }
    labels = {"y": np.arange(n) % 3, "multi": np.eye(n, 4, dtype=np.float32)}
    return features, labels


def codec_of(features: dict[str, Any], labels: dict[str, Any], backend: Any = None) -> FeatureCodec:
    return record_codec([(k, column_codec(k, v)) for k, v in features.items()],
                        [(k, column_codec(k, v)) for k, v in labels.items()], backend)


def samples(features: dict[str, Any], labels: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    n = len(next(iter(features.values())))
    return [({k: v[i] for k, v in features.items()}, {k: v[i] for k, v in labels.items()}) for i in range(n)]


def assert_read_back(db: Database, name: str, features: dict[str, Any], labels: dict[str, Any]) -> None:
    """Every column of every row, as written."""
    n = len(next(iter(features.values())))
    block = DatasetTable(db, name).read_range(0, n)
    got = block.features
    np.testing.assert_array_equal(np.asarray(got["image"]), features["image"])
    for i in range(n):
        np.testing.assert_array_equal(np.asarray(got["tokens"][i]), features["tokens"][i])
    assert list(got["title"]) == features["title"]
    assert [bytes(b) for b in got["raw"]] == features["raw"]
    np.testing.assert_array_equal(np.asarray(got["count"]), features["count"])
    np.testing.assert_array_equal(np.asarray(got["price"]), features["price"])  # exact: doubles both ways
    assert np.asarray(got["ok"]).dtype == np.bool_
    np.testing.assert_array_equal(np.asarray(got["ok"]), features["ok"])
    np.testing.assert_array_equal(np.asarray(block.labels["y"]), labels["y"])
    np.testing.assert_array_equal(np.asarray(block.labels["multi"]), labels["multi"])


# -- compiled by dmSQLAlchemy (no server) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dialect() -> sa.Dialect:
    pytest.importorskip("dmSQLAlchemy")
    pytest.importorskip("dmPython")
    return Database("dm://u:p@h:5236").dialect  # never connected: configure_engine has set the dialect up


def record_table(codec: FeatureCodec, name: str = "rec", page_size: int = 8192) -> sa.Table:
    """The dataset table of ``codec`` as DMBackend.create_table would create it at ``page_size``."""
    table = dataset_table(sa.MetaData(), name, codec, "columns", DM)
    plan_storage(table, page_size)
    return table


EVERY_KIND_COLUMNS = (
    'row_id BIGINT NOT NULL, image VARBINARY({size}) NOT NULL, tokens BLOB NOT NULL, title TEXT NOT NULL, '
    '"raw" BLOB NOT NULL, count BIGINT NOT NULL, price FLOAT NOT NULL, ok SMALLINT NOT NULL, y BIGINT NOT NULL, '
    'multi VARBINARY(16) NOT NULL, CLUSTER PRIMARY KEY (row_id)'
)
"""The columns of :func:`every_kind`'s table (``raw`` is one of dmSQLAlchemy's reserved words)."""


def test_every_column_kind_compiles_to_a_dm8_type_clustered_on_row_id(dialect: sa.Dialect) -> None:
    table = record_table(codec_of(*every_kind()))
    assert sql(CreateTable(table), dialect) == f"CREATE TABLE rec ( {EVERY_KIND_COLUMNS.format(size=12)} )"
    insert = table.insert().compile(dialect=dialect)
    assert str(insert) == ("INSERT INTO rec (row_id, image, tokens, title, \"raw\", count, price, ok, y, multi) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    assert "RETURNING" not in str(insert)
    query = RangeQuery(table, DM, dialect)
    assert " ".join(query.sql.split()) == (
        "SELECT rec.row_id, rec.image, rec.tokens, rec.title, rec.\"raw\", rec.count, rec.price, rec.ok, rec.y, "
        "rec.multi FROM rec WHERE rec.row_id BETWEEN ? AND ? ORDER BY rec.row_id"
    )


def test_a_bool_column_is_smallint_and_reads_back_as_bool() -> None:
    """dmSQLAlchemy's Boolean is SMALLINT (2 bytes a record); dmPython returns its values as int and binds a bool as
    0 or 1 (DamengDB/dmPython var.c, vNumber.c), which the block reads as bool."""
    table = dataset_table(sa.MetaData(), "b", record_codec([("ok", FeatureCodec("bool"))]), "columns", DM)
    assert plan_rows(table, 8192).row_bytes == 20 + 8 + 2
    driver_values = [1, 0, 0, 1]  # what dmPython hands back for a SMALLINT column
    np.testing.assert_array_equal(np.asarray(driver_values, dtype="|b1"), [True, False, False, True])
    assert encode_row(record_codec([("ok", FeatureCodec("bool"))]), {"ok": np.True_}, None) == (True,)


RESERVED = ["year", "rowid", "level", "comment", "date", "size", "user", "uid", "rownum", "value", "mode"]
"""DM8 keywords and pseudo-columns a column may be named after (``rowid`` and ``year`` quoted by the project, the rest
by dmSQLAlchemy)."""


@pytest.mark.parametrize("word", [*RESERVED, "Score", "名字"])
def test_reserved_mixed_case_and_non_ascii_column_names_are_quoted_in_every_statement(
    dialect: sa.Dialect, word: str
) -> None:
    codec = record_codec([(word, FeatureCodec("float")), ("x", FeatureCodec("int"))], [("y", FeatureCodec("int"))])
    table = record_table(codec)
    q = f'"{word}"'
    emitted = [sql(CreateTable(table), dialect), sql(table.insert(), dialect), sql(RangeQuery(table, DM, dialect)
                                                                                  .compiled.statement, dialect)]
    assert emitted == [
        f"CREATE TABLE rec ( row_id BIGINT NOT NULL, {q} FLOAT NOT NULL, x BIGINT NOT NULL, y BIGINT NOT NULL, "
        f"CLUSTER PRIMARY KEY (row_id) )",
        f"INSERT INTO rec (row_id, {q}, x, y) VALUES (?, ?, ?, ?)",
        f"SELECT rec.row_id, rec.{q}, rec.x, rec.y FROM rec WHERE rec.row_id BETWEEN ? AND ? ORDER BY rec.row_id",
    ]


def test_type_is_left_plain_as_dmsqlalchemy_leaves_it(dialect: sa.Dialect) -> None:
    """``type`` is not among dmSQLAlchemy's reserved words and no DM8 listing found makes it one: it stays unquoted
    (stored as TYPE), and the model's end-to-end test below writes and reads it so."""
    assert dialect.identifier_preparer.quote("type") == "type"


@pytest.mark.parametrize(("width", "columns", "in_row_from"), [
    (1000, 3, 8192),  # 3,000 bytes of binary: in-row from 8 KB pages up
    (1500, 3, 16384),  # 4,500 bytes: each column far under 8,188, the record over 3,900: long rows at 8 KB
    (3000, 2, 16384),
    (4000, 2, 32768),  # 8,000 bytes: over 16 KB pages' 8,000 with the overheads
    (VARBINARY_LIMIT, 2, 65536),  # never in-row
])
def test_long_rows_are_chosen_by_the_whole_record_not_by_each_column(
    dialect: sa.Dialect, width: int, columns: int, in_row_from: int
) -> None:
    fields = [(f"part{i}", FeatureCodec("array", "|u1", (width,))) for i in range(columns)]
    codec = record_codec([*fields, ("n", FeatureCodec("int"))], [("y", FeatureCodec("int"))])
    for page in sorted(IN_ROW_LIMITS):
        table = record_table(codec, page_size=page)
        ddl = sql(CreateTable(table), dialect)
        assert ddl.count(f"VARBINARY({width})") == columns and "BLOB" not in ddl  # never moved out of the row
        assert ddl.endswith("STORAGE(USING LONG ROW)") is (page < in_row_from), (page, ddl)


def test_a_binary_column_goes_to_blob_only_for_varying_or_oversized_values(dialect: sa.Dialect) -> None:
    codec = record_codec([("small", FeatureCodec("array", "<f4", (10,))), ("varying", FeatureCodec("varlen", "<f4")),
                          ("huge", FeatureCodec("array", "<f4", (100, 100))), ("blob", FeatureCodec("bytes"))])
    ddl = sql(CreateTable(record_table(codec, page_size=4096)), dialect)
    assert "small VARBINARY(40)" in ddl and "varying BLOB" in ddl and "huge BLOB" in ddl and "blob BLOB" in ddl
    assert "LONG ROW" not in ddl  # LOB columns are out of the record's count


# -- on the DM8 behaviour model ------------------------------------------------------------------------------------

dm8 = model_fixtures.dm8  # 8 KB pages, CASE_SENSITIVE=Y
dm8_any_case = model_fixtures.dm8_any_case  # CASE_SENSITIVE=Y, then N


def physical(server: Any, db: Database, name: str) -> Any:
    """The model's table behind dataset ``name``."""
    table = DatasetTable(db, name).info().table_name
    found = server.table(table) or server.table(table.upper())
    assert found is not None, table
    return found


def created(server: Any, since: int) -> list[str]:
    return [re.sub(r"ldm8_d_[0-9a-f]{8}_[0-9a-f]{8}", "<table>", s) for s in server.statements(since=since)
            if s.startswith("CREATE TABLE ldm8_d_")]


@pytest.mark.parametrize(("image", "long_row"), [((3, 4), False), ((3, 1500), True)],
                         ids=["in_row", "long_row"])
def test_a_record_dataset_of_every_kind_is_written_and_read_back(dm8: Any, image: tuple[int, int],
                                                                  long_row: bool) -> None:
    """At 8 KB pages: 12-byte images fit in-row; three channels of 1,500 bytes (one VARBINARY(4500)) plus the rest do
    not, and are created with long rows (the model refuses such a record without them: the test below)."""
    db = Database(dm8.url())
    features, labels = every_kind(image=image)
    codec = codec_of(features, labels, db.backend)
    mark = dm8.mark()
    info = write_rows(db, "rec", codec, "columns", samples(features, labels), total=N, progress=False)
    size = int(np.prod(image))
    (create,) = created(dm8, mark)
    storage = " STORAGE(USING LONG ROW)" if long_row else ""
    assert create == f"CREATE TABLE <table> ( {EVERY_KIND_COLUMNS.format(size=size)} ){storage}"
    table = physical(dm8, db, "rec")
    assert table.long_row is long_row and table.clustered and table.primary_key == ["ROW_ID"]
    assert info.row_count == N
    assert_read_back(db, "rec", features, labels)
    db.dispose()


def test_without_long_rows_the_model_refuses_a_record_over_half_a_page(dm8: Any) -> None:
    """The limit is on the whole record: two VARBINARY(2000) columns, each far within VARBINARY's 8,188 bytes, hold
    4,000 together, over the 3,900 an 8 KB page allows."""
    db = Database(dm8.url())
    codec = record_codec([("a", FeatureCodec("bytes")), ("b", FeatureCodec("bytes"))])
    table = dataset_table(sa.MetaData(), "tight", codec, "columns", DM)
    table.c.a.type = table.c.b.type = sa.VARBINARY(2000)  # sized, yet created with no storage clause
    row = (0, b"x" * 2000, b"y" * 2000)
    with db.begin() as conn:
        table.create(conn)
    with pytest.raises(DatabaseError, match="-2665"):
        with db.begin() as conn:
            db.backend.insert_rows(conn, table, [row])
    with db.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE tight ENABLE USING LONG ROW")
        db.backend.insert_rows(conn, table, [row])
    db.dispose()


NAMES = ["year", "rowid", "level", "comment", "date", "size", "type", "Score", "名字"]


def test_reserved_and_mixed_case_column_names_round_trip(dm8_any_case: Any) -> None:
    server = dm8_any_case
    db = Database(server.url())
    n = 6
    features = {name: np.arange(n, dtype=np.int64) * (k + 1) for k, name in enumerate(NAMES)}
    codec = record_codec([(k, FeatureCodec("int")) for k in NAMES], [("Level2", FeatureCodec("float"))], db.backend)
    rows = [({k: v[i] for k, v in features.items()}, float(i) / 4) for i in range(n)]
    mark = server.mark()
    write_rows(db, "named", codec, "columns", rows, total=n, progress=False)
    sent = " ".join(server.statements(since=mark))
    for quoted in ['"year"', '"rowid"', '"level"', '"comment"', '"date"', '"size"', '"Score"', '"名字"', '"Level2"']:
        assert sent.count(quoted) >= 2, quoted  # CREATE and INSERT
    table = physical(server, db, "named")
    stored = [c.name for c in table.columns]
    assert stored[:4] == [("ROW_ID" if server.case_sensitive else "row_id"), "year", "rowid", "level"]
    assert ("TYPE" if server.case_sensitive else "type") in stored  # plain: folded where names fold
    mark = server.mark()
    block = DatasetTable(db, "named").read_range(0, n)
    (select,) = [s for s in server.statements(since=mark) if "BETWEEN" in s]
    assert '."year", ' in select and '."rowid", ' in select and '."名字", ' in select
    for name in NAMES:
        np.testing.assert_array_equal(np.asarray(block.features[name]), features[name])
    np.testing.assert_array_equal(np.asarray(block.labels), np.arange(n) / 4)
    db.dispose()


def test_write_query_quotes_reserved_source_columns_in_its_outer_select(dm8_any_case: Any) -> None:
    server = dm8_any_case
    db = Database(server.url())
    with db.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE src (id BIGINT NOT NULL, "year" FLOAT NOT NULL, "Level" FLOAT NOT NULL, '
                             '"名字" FLOAT NOT NULL, label BIGINT NOT NULL, PRIMARY KEY (id))')
        conn.connection.cursor().executemany(
            'INSERT INTO src (id, "year", "Level", "名字", label) VALUES (?, ?, ?, ?, ?)',
            [(i, i + 0.5, -i, 2.0 * i, i % 2) for i in range(8)],
        )
    mark = server.mark()
    info = write_query(db, "from_src", 'SELECT id, "year", "Level", "名字", label FROM src', order_by=["id"],
                       progress=False)
    outer = [s for s in server.statements(since=mark) if s.startswith("SELECT") and "ORDER BY id" in s]
    assert outer and all(s.startswith('SELECT id, "year", "Level", "名字", label FROM (') for s in outer), outer
    assert list(info.codec.columns)[1:] == ["year", "Level", "名字"]
    block = DatasetTable(db, "from_src").read_range(0, 8)
    np.testing.assert_array_equal(np.asarray(block.features)[:, 1], np.arange(8) + 0.5)
    np.testing.assert_array_equal(np.asarray(block.labels), np.arange(8) % 2)
    db.dispose()


# -- every backend ----------------------------------------------------------------------------------------------------


def test_a_record_dataset_round_trips_on_every_backend(db: Database, table_name: str) -> None:
    """Uses the root conftest's ``db`` (SQLite, PostgreSQL, MariaDB, and DM8 when LIGHTNING_DM8_TEST_URL names a
    server, or on the model with LIGHTNING_DM8_TEST_MODEL=1; skipped with that reason otherwise)."""
    features, labels = every_kind(image=(3, 1500))  # long rows on DM8 at 4 and 8 KB pages
    features["year"] = np.arange(N) + 2000
    features["Level"] = np.arange(N) % 2 == 1
    codec = codec_of(features, labels, db.backend)
    write_rows(db, table_name, codec, "columns", samples(features, labels), total=N, progress=False)
    assert_read_back(db, table_name, features, labels)
    block = DatasetTable(db, table_name).read_range(0, N)
    np.testing.assert_array_equal(np.asarray(block.features["year"]), features["year"])
    np.testing.assert_array_equal(np.asarray(block.features["Level"]), features["Level"])
