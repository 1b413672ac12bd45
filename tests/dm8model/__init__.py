"""A behaviour model of DM8 as the project meets it through dmPython and dmSQLAlchemy (tests only).

No DM8 server runs in CI. This package stands in for the ``dmPython`` module: installed in ``sys.modules`` (see
:func:`serve`), the vendor's dmSQLAlchemy dialect drives it exactly as it drives the real driver, and every driver
call is recorded (``DM8Server.calls``, ``DM8Server.statements()``, ``DM8Server.round_trips``). It never replaces a
live test: ``scripts/dm8-test.sh`` runs the suite against a real server.

Storage engine: the tables live in a SQLite file (WAL) per model server; each DM8 statement is translated into
SQLite by :mod:`dm8model.sqltext`, and the model enforces the DM8 behaviours below on top. Only documented behaviour
is modelled, each with its source:

* **DDL commits itself and the open transaction** (``DDL_AUTO_COMMIT=1``, the default: "遇到DDL语句则自动提交该DDL
  语句和以前的DML和DDL操作", DM8 SQL manual, chapter 事务管理; quoted at outofmemory.cn/sjk/9457278.html).
  :meth:`driver.Session.ddl`.
* **Records fit in about half a page** unless the table has long rows: 1,900 / 3,900 / 8,000 / 16,000 bytes at
  4 / 8 / 16 / 32 KB pages (eco.dameng.com, "达梦数据库关键初始化参数指南"; DM8 SQL manual, table 1.4.1); 20
  bytes of every record go to ROWID, TRXID and NULL flags and a value over 128 bytes spends 2 on its length
  (eco.dameng.com community article "“记录超长”问题分析与处理方法"); LOB columns do not count; over the limit an
  INSERT fails with -2665 "记录超长" (Dameng E学 on modb.pro, "达梦报错超长记录如何分析").
  ``STORAGE(USING LONG ROW)`` (DM8 FAQ "SQL 语法": "当指定了 USING LONG ROW 存储选项,则每条记录的长度不受数据库
  页面大小限制") and ``ALTER TABLE ... ENABLE USING LONG ROW`` (same articles) lift it. The page size is set per
  server and answered by ``SELECT PAGE()``. :meth:`driver.Session.prepare_insert`.
* **Names fold to upper case** when unquoted with ``CASE_SENSITIVE=Y`` and keep their case (comparing without it)
  with ``CASE_SENSITIVE=N`` (DM8 dminit manual, CASE_SENSITIVE); the catalogue (``ALL_TABLES``, ``ALL_VIEWS``,
  ``ALL_TAB_COLS``...) answers dmSQLAlchemy's own queries with the stored names, and ``conn.str_case_sensitive`` tells
  the dialect the mode (dmSQLAlchemy 2.0.17 ``dmpython.py``, ``connect``). With ``N`` text compares without case too.
  :mod:`dm8model.sqltext`.
* **Values come back as dmPython returns them**: integers as ``int`` (SMALLINT too, which dmSQLAlchemy gives a
  Boolean column), BIT and BOOLEAN as ``bool`` (DamengDB/dmPython ``var.c``, ``dmVar_TypeBySQLType``); a Python
  ``bool`` parameter is bound as 0 or 1 (``vNumber.c``, ``NumberVar_SetValueFromBoolean``). :mod:`dm8model.driver`.
* **Driver errors** carry dmPython's codes in dmPython's exception classes: -70028 when nothing listens, -70019 when
  the server dies or stays silent (both observed with dmPython 2.6.1, tests/db/test_dm8_offline.py), -6601..-6612 as
  ``IntegrityError`` (DamengDB/dmPython ``Environment.c``), -2106 for a missing table, -2665 for a record too long.
  Codes without a source are marked UNSOURCED in :mod:`dm8model.driver`.
* **Round trips**: one per execute, executemany, commit, rollback and batch of ``arraysize`` fetched rows (dmPython
  ``Cursor.c``: 50 by default), and two more per LOB value handed over (dmPython ``vLob.c`` ``vLob_GetValue`` ->
  ``exLob.c``: ``dpi_lob_get_length`` then ``dpi_lob_read``).
* **A hung server** (``DM8Server.hung``) accepts connections and never answers: each call blocks reading a real
  socket to the server's port until ``login_timeout`` (at login) or a shutdown of that socket, then fails with -70019,
  as dmPython does (test_dm8_offline shows it on the real driver). ``lose_connections()`` kills every open
  connection (a restart), ``fail_next()`` injects one error.
* **dmSQLAlchemy's own statements** are served: its connect handshake (``V$INSTANCE``,
  ``SET_SESSION_IDENTITY_CHECK``), catalogue queries (``ALL_TABLES``, ``ALL_VIEWS``, ``ALL_TAB_COLS``,
  ``SYSOBJECTS``, ``SYSCOLUMNS``; ``USER_TABLES`` and ``USER_TAB_COLUMNS`` for the one user), and the
  ``RETURNING ... INTO ?`` its executemany appends (dmSQLAlchemy 2.0.17 ``extensions.py``, whose result lists the
  model returns as dmPython's out parameters).

Limits (where the model is not DM8; none of them is a DM8 behaviour a test may rely on): the store takes one writer
at a time (``SELECT ... FOR UPDATE`` takes that lock, as a row lock would block the same writers), so two write
transactions at once wait, then fail with a RuntimeError naming the model; constraint reflection (dmSQLAlchemy's
Oracle-style ``(+)`` joins) and PL/SQL are not served; the model lives in one process, so a test's subprocesses
cannot reach it. ``LIGHTNING_DM8_TEST_MODEL=1`` runs the backend-parametrized suite on it (tests/ldm8_backends.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dm8model.server import DM8Server


@contextmanager
def serve(monkeypatch: Any, page_size: int = 8192, **settings: Any) -> Iterator[DM8Server]:
    """A model server, installed as ``dmPython`` for the rest of the test."""
    from dm8model.driver import module

    server = DM8Server(page_size, **settings)
    monkeypatch.setitem(sys.modules, "dmPython", module(server))
    try:
        yield server
    finally:
        server.close()


__all__ = ["DM8Server", "serve"]
