"""Baseline: the fastest whole-table read each Python client offers, into the arrays a loader needs.

Every method reads ``row_id, features, label`` of the project's dataset table and builds the same arrays: ids
(int64, row id order), features (``(N, 3, 32, 32)`` uint8, or a list of int64 token arrays) and labels (int64).

* SQLite: ``sqlite3`` fetchall; connectorx (2 partitions).
* PostgreSQL: psycopg 3 ``COPY (SELECT ...) TO STDOUT (FORMAT BINARY)``; psycopg 3 binary cursor fetchall;
  ADBC (``adbc-driver-postgresql``) ``fetch_arrow_table``; connectorx (2 partitions).
* MariaDB: PyMySQL ``SSCursor``; mysqlclient ``SSCursor``; connectorx (2 partitions).
* Other backends (DM8): the driver's cursor fetchall.

A client that is not installed is reported as a gap, not silently dropped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa

from benchmarks.common import Settings, measure, record
from benchmarks.drivers import connect, quote

Arrays = tuple[np.ndarray, Any, np.ndarray]


def _from_values(ids: Any, features: list[Any], labels: Any, shape: tuple[int, ...] | None, dtype: np.dtype) -> Arrays:
    n = len(features)
    ids_a = np.fromiter(ids, dtype=np.int64, count=n)
    labels_a = np.fromiter(labels, dtype=np.int64, count=n)
    if shape is not None:
        feats: Any = np.frombuffer(b"".join(features), dtype=dtype).reshape((n, *shape))
    else:
        feats = [np.frombuffer(f, dtype=dtype) for f in features]
    return ids_a, feats, labels_a


def _from_rows(rows: list[Any], shape: tuple[int, ...] | None, dtype: np.dtype) -> Arrays:
    if not rows:
        return np.empty(0, np.int64), [], np.empty(0, np.int64)
    ids, features, labels = zip(*rows, strict=True)
    return _from_values(ids, list(features), labels, shape, dtype)


def _from_arrow(table: Any, shape: tuple[int, ...] | None, dtype: np.dtype) -> Arrays:
    """Arrow columns -> arrays without a per-row Python object for fixed-size features; sorted by row id."""
    ids = table.column("row_id").to_numpy()
    labels = table.column("label").to_numpy().astype(np.int64, copy=False)
    column = table.column("features").combine_chunks()
    _, offset_buf, data_buf = column.buffers()
    wide = str(column.type).startswith("large")
    offsets = np.frombuffer(offset_buf, dtype=np.int64 if wide else np.int32)
    offsets = offsets[column.offset: column.offset + len(column) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)
    order = np.argsort(ids, kind="stable") if len(ids) and np.any(np.diff(ids) < 0) else None
    if shape is not None:
        feats: Any = data[offsets[0]: offsets[-1]].view(dtype).reshape((len(ids), *shape))
        if order is not None:
            feats = feats[order]
    else:
        starts, stops = offsets[:-1].tolist(), offsets[1:].tolist()
        feats = [data[a:b].view(dtype) for a, b in zip(starts, stops, strict=True)]
        if order is not None:
            feats = [feats[i] for i in order.tolist()]
    if order is not None:
        ids, labels = ids[order], labels[order]
    return ids, feats, labels


def _sql(url: str, table: str, ordered: bool = True) -> str:
    return f"SELECT row_id, features, label FROM {quote(url, table)}" + (" ORDER BY row_id" if ordered else "")


def _plain_url(url: str) -> str:
    """The URL without the SQLAlchemy driver suffix, as ADBC and connectorx take it."""
    u = sa.engine.make_url(url)
    return u.set(drivername=u.get_backend_name()).render_as_string(hide_password=False)


def methods(
    url: str, table: str, shape: tuple[int, ...] | None, dtype: np.dtype,
) -> dict[str, Callable[[], Arrays] | str]:
    """Name -> a function doing one full read, or a string saying why the method is not available."""
    backend = sa.engine.make_url(url).get_backend_name()
    found: dict[str, Callable[[], Arrays] | str] = {}
    have = {m: importlib.util.find_spec(m) is not None for m in ("connectorx", "adbc_driver_postgresql", "MySQLdb")}

    def fetchall(driver: str | None = None, cursor_class: Any = None) -> Callable[[], Arrays]:
        def read() -> Arrays:
            conn = connect(url, driver)
            try:
                cur = conn.cursor(cursor_class) if cursor_class is not None else conn.cursor()
                cur.execute(_sql(url, table))
                rows = cur.fetchall()
                cur.close()
            finally:
                conn.close()
            return _from_rows(rows, shape, dtype)
        return read

    def connectorx_read() -> Arrays:
        import connectorx as cx

        target = _plain_url(url) if backend != "sqlite" else f"sqlite://{sa.engine.make_url(url).database}"
        arrow = cx.read_sql(target, _sql(url, table, ordered=False), return_type="arrow",
                            partition_on="row_id", partition_num=2)
        return _from_arrow(arrow, shape, dtype)

    if backend == "sqlite":
        found["sqlite3 fetchall"] = fetchall()
    elif backend == "postgresql":
        def copy_binary() -> Arrays:
            conn = connect(url)
            try:
                with conn.cursor() as cur, cur.copy(f"COPY ({_sql(url, table)}) TO STDOUT (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "bytea", "int8"])
                    rows = list(copy.rows())
            finally:
                conn.close()
            return _from_rows(rows, shape, dtype)

        def binary_fetchall() -> Arrays:
            conn = connect(url)
            try:
                with conn.cursor(binary=True) as cur:
                    cur.execute(_sql(url, table))
                    rows = cur.fetchall()
            finally:
                conn.close()
            return _from_rows(rows, shape, dtype)

        def adbc_read() -> Arrays:
            import adbc_driver_postgresql.dbapi as adbc

            with adbc.connect(_plain_url(url)) as conn, conn.cursor() as cur:
                cur.execute(_sql(url, table))
                arrow = cur.fetch_arrow_table()
            return _from_arrow(arrow, shape, dtype)

        found["psycopg3 COPY BINARY"] = copy_binary
        found["psycopg3 binary fetchall"] = binary_fetchall
        found["ADBC fetch_arrow_table"] = adbc_read if have["adbc_driver_postgresql"] else \
            "not installed: pip install adbc-driver-postgresql pyarrow"
    elif backend in ("mysql", "mariadb"):
        import pymysql.cursors

        found["PyMySQL SSCursor"] = fetchall(None, pymysql.cursors.SSCursor)
        if have["MySQLdb"]:
            import MySQLdb.cursors

            found["mysqlclient SSCursor"] = fetchall("mysqlclient", MySQLdb.cursors.SSCursor)
        else:
            found["mysqlclient SSCursor"] = "not installed: needs Debian libmariadb-dev, then pip install mysqlclient"
    else:
        found["driver fetchall"] = fetchall()
    if backend in ("sqlite", "postgresql", "mysql", "mariadb"):
        found["connectorx 2 partitions"] = connectorx_read if have["connectorx"] else \
            "not installed: pip install connectorx"
    return found


def run(settings: Settings, backend: str, url: str, dataset: str, table: str, rows: int,
        shape: tuple[int, ...] | None, dtype: str, reference: Any) -> tuple[list[dict[str, Any]], list[str]]:
    out, gaps = [], []
    for name, read in methods(url, table, shape, np.dtype(dtype)).items():
        if isinstance(read, str):
            gaps.append(f"{backend}/{dataset} full-table read via {name}: {read}")
            continue
        ids, feats, labels = read()
        _check(name, ids, feats, labels, reference)
        result = measure(lambda read=read: len(read()[0]), settings.passes, settings.warmup, expect=rows)
        out.append(record("baseline", "fullscan", result, backend=backend, dataset=dataset, client=name))
        print(f"  full-table {backend}/{dataset} {name}: {result['rows_per_s']:,.0f} rows/s", flush=True)
    return out, gaps


def _check(name: str, ids: np.ndarray, feats: Any, labels: np.ndarray, reference: Any) -> None:
    """The read must give back exactly the written samples."""
    ok = np.array_equal(ids, np.arange(len(reference))) and np.array_equal(labels, reference.labels)
    if ok and isinstance(feats, np.ndarray):
        ok = np.array_equal(feats, reference.features)
    elif ok:
        ok = all(np.array_equal(a, b) for a, b in zip(feats, reference.features, strict=False)) \
            and len(feats) == len(reference)
    if not ok:
        raise RuntimeError(f"full-table read {name!r} did not return the written samples")
