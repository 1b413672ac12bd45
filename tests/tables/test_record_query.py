"""write_query into record datasets: each query column stored as its own column with its natural type, binary
columns decoded by ``codecs``, several label columns; the vector layout kept where it holds the query; NULLs and
bad settings refused with a message naming the column."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from ldm8_backends import DM_MODEL

from lightning_dm8 import Database, DatasetTable, InvalidInputError, write_query
from tables.support import assert_nothing_written
from tables.test_record_write import TEXTS, assert_record_round_trip, select_by_name

N = 10
CODECS = {"image": {"dtype": "uint8", "shape": [3, 2, 2]}, "tokens": {"dtype": "int32"},
          "tags": {"dtype": "float32", "shape": [4]}, "ok": {"kind": "bool"}}


def _binary() -> sa.types.TypeEngine:
    return sa.LargeBinary().with_variant(sa.VARBINARY(8188), "dm")


def source_columns() -> dict[str, Any]:
    """The raw table's values, one column of every kind; ``item_id`` orders the rows."""
    rng = np.random.default_rng(3)
    return {
        "item_id": np.arange(N),
        "image": rng.integers(0, 256, (N, 3, 2, 2), dtype=np.uint8),
        "tokens": [rng.integers(-1000, 1000, i % 4, dtype=np.int32) for i in range(N)],
        "title": TEXTS[:N],
        "payload": [rng.bytes(i + 1) for i in range(N)],
        "price": np.linspace(-1, 1, N),
        "amount": [Decimal(f"{i}.25") for i in range(N)],
        "ok": np.arange(N) % 2 == 0,
        "y": np.arange(N) % 3,
        "score": np.linspace(0, 2, N),
        "tags": np.eye(N, 4, dtype=np.float32),
    }


def create_source(db: Database, name: str) -> dict[str, Any]:
    values = source_columns()
    table = sa.Table(
        name, sa.MetaData(), sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("image", _binary()), sa.Column("tokens", _binary()), sa.Column("title", sa.Text()),
        sa.Column("payload", _binary()), sa.Column("price", sa.Float(53)), sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("ok", sa.Boolean()), sa.Column("y", sa.Integer), sa.Column("score", sa.Float(53)),
        sa.Column("tags", _binary()), sa.Column("note", sa.Text()), sa.Column("made", sa.DateTime()),
    )
    rows = []
    for i in range(N):
        row = {k: v[i] for k, v in values.items()}
        row.update(item_id=i, image=row["image"].tobytes(), tokens=row["tokens"].tobytes(), price=float(row["price"]),
                   ok=bool(row["ok"]), y=int(row["y"]), score=float(row["score"]), tags=row["tags"].tobytes(),
                   note=None if i == 6 else "n", made=None)
        rows.append(row)
    with db.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), rows)
    return values


def test_every_column_kind_from_a_query(db: Database, table_name: str) -> None:
    values = create_source(db, table_name)
    sql = (f"SELECT item_id, image, tokens, title, payload, price, amount, ok, y, score, tags FROM {table_name}")
    info = write_query(db, f"{table_name}_ds", sql, label_column=["y", "score", "tags"], codecs=CODECS,
                       order_by=["item_id"], progress=False)
    # Names as the server reports them: DM8 without case sensitivity reports a reserved word such as IMAGE in capitals.
    kinds = [(name.lower(), codec.kind) for name, codec in info.codec.fields]
    assert kinds == [("item_id", "int"), ("image", "array"), ("tokens", "varlen"), ("title", "text"),
                     ("payload", "bytes"), ("price", "float"), ("amount", "float"), ("ok", "bool")]
    assert [(n, c.kind, c.shape) for n, c in info.codec.targets] == [("y", "int", ()), ("score", "float", ()),
                                                                     ("tags", "array", (4,))]
    values["amount"] = [float(a) for a in values["amount"]]
    features = {name: values[name.lower()] for name, _ in info.codec.fields}
    targets = {name: values[name] for name in ("y", "score", "tags")}
    table = DatasetTable(db, f"{table_name}_ds")
    assert_record_round_trip(table, features, targets, [0, 4, N - 1])
    price, title, amount = select_by_name(db, f"{table_name}_ds", ["price", "title", "amount"], 7)
    assert (float(price), title, float(amount)) == (values["price"][7], TEXTS[7], 7.25)
    assert table.validate().row_count == N


def test_one_label_and_no_label(db: Database, table_name: str) -> None:
    values = create_source(db, table_name)
    sql = f"SELECT item_id, title, payload, price, y FROM {table_name}"
    info = write_query(db, f"{table_name}_ds", sql, label_column="y", progress=False)  # several text/binary columns
    assert info.codec.kind == "record" and [n for n, _ in info.codec.targets] == ["y"]
    features = {name: values[name] for name in ("item_id", "title", "payload", "price")}
    assert_record_round_trip(DatasetTable(db, f"{table_name}_ds"), features, {"y": values["y"]}, [3])
    write_query(db, f"{table_name}_ds", sql, label_column=None, if_exists="replace", progress=False)
    assert_record_round_trip(DatasetTable(db, f"{table_name}_ds"), {**features, "y": values["y"]}, None, [5])


def test_layout_of_numeric_queries(db: Database, table_name: str) -> None:
    values = create_source(db, table_name)
    sql = f"SELECT item_id, price, y FROM {table_name}"
    vector = write_query(db, f"{table_name}_v", sql, label_column="y", progress=False)
    assert (vector.codec.kind, vector.codec.columns, vector.label_kind) == ("numeric", ("item_id", "price"), "int")
    columns = write_query(db, f"{table_name}_c", sql, label_column="y", layout="columns", progress=False)
    assert [(n, c.kind) for n, c in columns.codec.fields] == [("item_id", "int"), ("price", "float")]
    assert DatasetTable(db, f"{table_name}_c")[4] == ({"item_id": 4, "price": values["price"][4]}, 1)
    several = write_query(db, f"{table_name}_s", sql, label_column=["y"], progress=False)
    assert several.codec.kind == "record" and several.label_kind == "columns"
    single = write_query(db, f"{table_name}_t", f"SELECT title, y FROM {table_name}", progress=False,
                         label_column="y", order_by=["y"])
    assert single.codec.kind == "text"  # one text column keeps the single-feature form


def test_append_to_a_query_record(db: Database, table_name: str) -> None:
    values = create_source(db, table_name)
    name = f"{table_name}_ds"
    head = f"SELECT item_id, title, ok, y FROM {table_name} WHERE item_id < 4"
    tail = f"SELECT item_id, title, ok, y FROM {table_name} WHERE item_id >= 4"
    write_query(db, name, head, label_column="y", codecs={"ok": {"kind": "bool"}}, progress=False)
    info = write_query(db, name, tail, label_column="y", codecs={"ok": {"kind": "bool"}}, if_exists="append",
                       progress=False)
    assert info.row_count == N
    features = {name: values[name] for name in ("item_id", "title", "ok")}
    assert_record_round_trip(DatasetTable(db, name), features, {"y": values["y"]}, [3, 4])
    with pytest.raises(InvalidInputError, match=r"cannot append .*: it stores columns \[item_id:int, title:text, "
                                                r"ok:bool\] with label columns \[y:int\], the new rows are columns "
                                                r"\[item_id:int, title:text, ok:float\]"):
        write_query(db, name, tail, label_column="y", codecs={"ok": {"kind": "float"}}, if_exists="append",
                    progress=False)


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "null-later": ({"sql": "SELECT item_id, title, note, y FROM {t}"},
                   r"query row 6: column 'note' is NULL; every row needs a value: filter those rows out \(WHERE note "
                   r"IS NOT NULL\) or give a default \(COALESCE\(note, \.\.\.\)\) in the query"),
    "null-first": ({"sql": "SELECT item_id, made, y FROM {t}"}, r"query row 0: column 'made' is NULL"),
    "unknown-codec-column": ({"codecs": {"pixels": {"dtype": "uint8"}}},
                             r"codecs names column 'pixels', which the query does not return; its columns are "
                             r"\['item_id', 'image', 'y'\]"),
    "bad-codec": ({"codecs": {"image": {"shape": [12]}}},
                  r"codecs\['image'\] is \{'shape': \[12\]\}; give \{'dtype': \.\.\., 'shape': \[\.\.\.\]\}"),
    "bad-codec-kind": ({"codecs": {"image": {"kind": "picture"}}}, r"codecs\['image'\] is \{'kind': 'picture'\}"),
    "bad-dtype": ({"codecs": {"image": {"dtype": "nope"}}}, r"codecs\['image'\]: data type 'nope' not understood"),
    "dtype-with-columns": ({"dtype": "uint8", "shape": [12], "layout": "columns"},
                           r"dtype and shape describe the single binary feature column of layout='vector'; with "
                           r"several columns give codecs="),
    "vector-impossible": ({"label_column": ["y"], "layout": "vector"},
                          r"layout='vector' cannot hold this query: label_column is a list \(\['y'\]\); use "
                          r"layout='columns'"),
    "vector-codecs": ({"codecs": {"image": {"dtype": "uint8"}}, "layout": "vector"},
                      r"layout='vector' cannot hold this query: codecs are given \(for \['image'\]\)"),
    "bad-layout": ({"layout": "rows"}, r"layout must be one of \('auto', 'vector', 'columns'\); got 'rows'"),
    "missing-labels": ({"label_column": ["y", "z", "w"]},
                       r"the query has no label columns \['z', 'w'\]; its columns are \['item_id', 'image', 'y'\]"),
    "wrong-size": ({"codecs": {"image": {"dtype": "uint8", "shape": [13]}}},
                   r"query row 0: column 'image' holds 12 bytes, expected 13 bytes \(\|u1 \(13,\)\)"),
    "datetime": ({"sql": "SELECT item_id, CURRENT_TIMESTAMP AS made, y FROM {t}"},
                 r"column 'made' holds datetime values, which a dataset cannot store; convert it in the query"),
    "text-label": ({"sql": "SELECT item_id, title, payload FROM {t}", "label_column": "title"},
                   r"label column 'title' is text; label columns hold"),
    "row-id": ({"sql": "SELECT item_id AS row_id, title, payload, y FROM {t}", "order_by": ["row_id"]},
               r"feature column 'row_id': 'row_id' is the dataset's own key; rename it"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_query_records_write_nothing(db: Database, backend: str, table_name: str, staged: list[str],
                                        case: str) -> None:
    if case == "datetime" and (backend == "sqlite" or DM_MODEL):
        pytest.skip("SQLite (and the DM8 model) return timestamps as text, which a text column stores")
    create_source(db, table_name)
    options, message = BAD[case]
    options = {"label_column": "y", "order_by": ["item_id"], **options}
    sql = options.pop("sql", "SELECT item_id, image, y FROM {t}").format(t=table_name)
    with pytest.raises(InvalidInputError, match=f"(?i){message}"):  # DM8 may report names in capitals
        write_query(db, f"{table_name}_ds", sql, progress=False, **options)
    assert_nothing_written(db, f"{table_name}_ds", staged)
