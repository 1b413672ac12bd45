"""write_query: dataset tables materialised from SQL over raw tables created here on each backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from lightning_dm8 import Database, DatasetTable, InvalidInputError, TableNotFoundError, write_query
from tables.support import assert_nothing_written, read_all

ITEM_SHAPE = (3, 4, 4)
ITEM_BYTES = int(np.prod(ITEM_SHAPE))


def _binary() -> sa.types.TypeEngine:
    """A sortable binary column on every backend (DM8 cannot ORDER BY a BLOB)."""
    return sa.LargeBinary().with_variant(sa.VARBINARY(8188), "dm")


def raw_rows(n: int = 40, seed: int = 0) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]]]:
    """Items and labels with redundancy: some items stored twice, some labels stored twice, one item unlabelled."""
    rng = np.random.default_rng(seed)
    items = [(i, rng.bytes(ITEM_BYTES)) for i in range(n)]
    labels = [(i, int(rng.integers(0, 5))) for i in range(n - 1)]
    return items + items[::7], labels + labels[::5]


def create_raw(db: Database, prefix: str, items: list[tuple[int, bytes]], labels: list[tuple[int, int]],
               seed: int) -> str:
    """``{prefix}_items`` and ``{prefix}_labels`` filled in a shuffled order; returns the join query over them."""
    metadata = sa.MetaData()
    item_table = sa.Table(f"{prefix}_items", metadata, sa.Column("item_id", sa.Integer, nullable=False),
                          sa.Column("payload", _binary(), nullable=False))
    label_table = sa.Table(f"{prefix}_labels", metadata, sa.Column("item_id", sa.Integer, nullable=False),
                           sa.Column("label", sa.Integer, nullable=False))
    rng = np.random.default_rng(seed)
    with db.begin() as conn:
        metadata.create_all(conn)
        for table, rows in ((item_table, items), (label_table, labels)):
            keys = [c.name for c in table.columns]
            conn.execute(table.insert(), [dict(zip(keys, rows[i], strict=True)) for i in rng.permutation(len(rows))])
    return (f"SELECT i.payload AS payload, l.label AS label FROM {prefix}_items i "
            f"JOIN {prefix}_labels l ON i.item_id = l.item_id")


def expected_join(items: list[tuple[int, bytes]], labels: list[tuple[int, int]]) -> list[tuple[bytes, int]]:
    """The join's rows in the order write_query gives them by default: sorted by every column."""
    return sorted((payload, label) for item, payload in items for key, label in labels if key == item)


def content(db: Database, name: str) -> list[tuple[Any, Any]]:
    features, labels = read_all(DatasetTable(db, name))
    return list(zip(features, labels.tolist(), strict=True))


def test_join_gives_a_dense_deterministic_table(db: Database, table_name: str) -> None:
    items, labels = raw_rows()
    query = create_raw(db, f"{table_name}_a", items, labels, seed=1)
    reordered = create_raw(db, f"{table_name}_b", items, labels, seed=2)
    first = write_query(db, f"{table_name}_x", query, progress=False)
    again = write_query(db, f"{table_name}_x", query, if_exists="replace", progress=False)
    other = write_query(db, f"{table_name}_y", reordered, progress=False)
    expected = expected_join(items, labels)
    assert first.row_count == len(expected) and len(set(expected)) < len(expected)  # duplicates kept, in order
    assert first.codec.kind == "bytes" and first.label_kind == "int"
    assert first.fingerprint == again.fingerprint == other.fingerprint
    assert content(db, f"{table_name}_x") == content(db, f"{table_name}_y") == expected
    assert DatasetTable(db, f"{table_name}_y").validate().row_count == len(expected)


def test_order_by_key_for_a_blob_query(db: Database, table_name: str) -> None:
    items, labels = raw_rows(seed=3)
    unique_labels = [(item, 1000 - item) for item, _ in labels]  # a total order on the key alone
    join = create_raw(db, table_name, items, unique_labels, seed=4)
    info = write_query(db, f"{table_name}_ds", join, order_by=["label"], dtype="uint8", shape=ITEM_SHAPE,
                       progress=False)
    assert (info.codec.kind, info.codec.dtype, info.codec.shape) == ("array", "|u1", ITEM_SHAPE)
    expected = sorted(expected_join(items, unique_labels), key=lambda row: row[1])
    got = content(db, f"{table_name}_ds")
    assert [label for _, label in got] == [label for _, label in expected]
    for (array, _), (payload, _) in zip(got, expected, strict=True):
        assert array.shape == ITEM_SHAPE and array.tobytes() == payload


def test_varlen_from_query(db: Database, table_name: str) -> None:
    items, labels = raw_rows(seed=5)
    join = create_raw(db, table_name, items, labels, seed=6)
    info = write_query(db, f"{table_name}_ds", join, dtype="int16", progress=False)
    assert (info.codec.kind, info.codec.dtype) == ("varlen", "<i2")
    got = content(db, f"{table_name}_ds")
    assert [(a.tobytes(), label) for a, label in got] == expected_join(items, labels)
    assert all(a.dtype == np.int16 and a.shape == (ITEM_BYTES // 2,) for a, _ in got)


def create_measures(db: Database, name: str, rows: list[tuple[float, float, int, float]]) -> str:
    table = sa.Table(name, sa.MetaData(), sa.Column("a", sa.Float(53)), sa.Column("b", sa.Float(53)),
                     sa.Column("c", sa.Integer), sa.Column("score", sa.Float(53)))
    with db.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [dict(zip("abc", row[:3], strict=True), score=row[3]) for row in rows])
    return f"SELECT a, b, c, score FROM {name}"


def test_numeric_feature_columns(db: Database, table_name: str) -> None:
    rng = np.random.default_rng(8)
    rows = [(float(a), float(b), int(c), float(s)) for a, b, c, s in
            zip(rng.standard_normal(30), rng.standard_normal(30), rng.integers(-5, 5, 30), rng.random(30), strict=True)]
    query = create_measures(db, table_name, rows)
    info = write_query(db, f"{table_name}_ds", query, label_column="score", progress=False)
    assert (info.codec.kind, info.codec.columns, info.label_kind) == ("numeric", ("a", "b", "c"), "float")
    features, labels = read_all(DatasetTable(db, f"{table_name}_ds"))
    ordered = sorted(rows)
    assert features.dtype == np.float32 and features.shape == (30, 3)
    np.testing.assert_array_equal(features, np.array([r[:3] for r in ordered], dtype=np.float32))
    assert labels.tolist() == [r[3] for r in ordered]
    sample, label = DatasetTable(db, f"{table_name}_ds")[4]
    np.testing.assert_array_equal(sample, np.array(ordered[4][:3], dtype=np.float32))
    assert label == ordered[4][3]


def test_unlabelled_query(db: Database, table_name: str) -> None:
    query = create_measures(db, table_name, [(1.5, 2.5, 3, 0.0), (0.5, 1.0, 2, 0.0)])
    info = write_query(db, f"{table_name}_ds", query, label_column=None, progress=False)
    assert info.label_kind == "none" and info.codec.columns == ("a", "b", "c", "score")
    features, labels = read_all(DatasetTable(db, f"{table_name}_ds"))
    assert labels is None
    assert features.tolist() == [[0.5, 1.0, 2.0, 0.0], [1.5, 2.5, 3.0, 0.0]]


@pytest.mark.timeout(60)
def test_sqlite_source_query_does_not_block_the_writer(tmp_path, staged: list[str]) -> None:
    """The source query streams while the dataset is written into the same SQLite file. In rollback-journal mode the
    reader's lock stalls the writer once the rows outgrow the page cache (15 MB here): every spill waits for the busy
    timeout. WAL mode lets both proceed."""
    db = Database(f"sqlite:///{tmp_path / 'big.db'}", connect_timeout=2)
    rng = np.random.default_rng(9)
    items = [(i, rng.bytes(6000)) for i in range(2500)]
    join = create_raw(db, "src", items, [(i, i % 3) for i in range(2500)], seed=10)
    info = write_query(db, "ds", join, order_by=["payload"], progress=False)
    assert info.row_count == 2500
    got = content(db, "ds")
    assert [payload for payload, _ in got] == sorted(payload for _, payload in items)
    assert staged == [info.physical]  # the rows went straight into the version's own table
    db.dispose()


BAD_QUERIES: dict[str, tuple[dict[str, Any], type[Exception], str]] = {
    "no-label-column": ({"label_column": "target"}, InvalidInputError,
                        r"the query has no label column 'target'; its columns are \['payload', 'label'\]"),
    "unknown-order-key": ({"order_by": ["item_id"]}, InvalidInputError,
                          r"order_by names \['item_id'\], which the query does not return"),
    "only-a-label": ({"sql": "SELECT l.label AS label FROM {p}_labels l"}, InvalidInputError,
                     r"the query returns no feature column besides the label"),
    "no-rows": ({"sql": "{join} WHERE l.label < 0"}, InvalidInputError,
                r"no rows to write into dataset '.*': the query returned no rows"),
    "mixed-features-as-vector": ({"sql": "SELECT i.payload AS payload, i.item_id AS item_id, l.label AS label "
                                         "FROM {p}_items i JOIN {p}_labels l ON i.item_id = l.item_id",
                                  "layout": "vector"},
                                 InvalidInputError, r"layout='vector' cannot hold this query: feature columns "
                                                    r"\['payload'\] are not numbers; use layout='columns'"),
    "reserved-column": ({"sql": "SELECT i.item_id AS row_id, l.label AS label FROM {p}_items i "
                                "JOIN {p}_labels l ON i.item_id = l.item_id"},
                        InvalidInputError, r"feature columns may not be named \['row_id'\]"),
    "wrong-size": ({"dtype": "uint8", "shape": ITEM_SHAPE, "order_by": ["label"]}, InvalidInputError,
                   r"query row \d+: the feature value holds 47 bytes, expected 48 bytes \(\|u1 \(3, 4, 4\)\)"),
    "ragged-size": ({"dtype": "int16"}, InvalidInputError,
                    r"query row \d+: the feature value holds 47 bytes, expected a multiple of 2"),
    "null-numeric": ({"sql": "SELECT i.item_id AS a, CASE WHEN i.item_id = 7 THEN NULL ELSE i.item_id END AS b, "
                             "l.label AS label FROM {p}_items i JOIN {p}_labels l ON i.item_id = l.item_id"},
                     InvalidInputError, r"query row \d+: column 'b' is NULL; every row needs a value: filter those "
                                        r"rows out \(WHERE b IS NOT NULL\) or give a default \(COALESCE\(b, "),
    "null-first-row": ({"sql": "SELECT i.item_id AS a, CASE WHEN i.item_id = 0 THEN NULL ELSE i.item_id END AS b, "
                               "l.label AS label FROM {p}_items i JOIN {p}_labels l ON i.item_id = l.item_id"},
                       InvalidInputError, r"query row 0: column 'b' is NULL; every row needs a value"),
    "missing-raw-table": ({"sql": "SELECT payload, label FROM {p}_nope"}, TableNotFoundError, r"(?i)_nope"),
}


@pytest.mark.parametrize("case", BAD_QUERIES)
def test_bad_query_writes_nothing(db: Database, table_name: str, staged: list[str], case: str) -> None:
    items, labels = raw_rows(seed=11)
    items[5] = (items[5][0], items[5][1][:-1])  # one payload a byte short
    join = create_raw(db, table_name, items, labels, seed=12)
    options, error, message = BAD_QUERIES[case]
    options = dict(options)
    sql = options.pop("sql", "{join}").format(join=join, p=table_name)
    name = f"{table_name}_ds"
    with pytest.raises(error, match=message):
        write_query(db, name, sql, progress=False, **options)
    assert_nothing_written(db, name, staged)
