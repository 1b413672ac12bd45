"""mysqlclient (``mysql+mysqldb://``), the faster MySQL/MariaDB driver: the same dataset reads as with PyMySQL, a long
query outlives the connect timeout, and a hung read can be cut off at its socket."""

from __future__ import annotations

import importlib.util
import os
import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa

from lightning_dm8 import Database, DatasetTable, DM8DataModule, write_arrays
from lightning_dm8.errors import DatabaseUnavailableError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("MySQLdb") is None,
                                reason="mysqlclient is not installed (pip install mysqlclient; needs libmariadb-dev)")

SERVER = "root@127.0.0.1:3306/test"


def test_a_dataset_reads_the_same_through_mysqlclient() -> None:
    table_name = f"mysqlclient_{os.getpid()}"
    rng = np.random.default_rng(0)
    tokens = [rng.integers(0, 1000, int(k), dtype=np.int64) for k in rng.integers(0, 9, 300)]
    write_arrays(f"mysql+pymysql://{SERVER}", table_name, tokens, np.arange(300), progress=False)
    try:
        fast = DatasetTable(f"mysql+mysqldb://{SERVER}", table_name)
        block = fast.read_range(0, 300)
        assert [row.tolist() for row in block.features] == [t.tolist() for t in tokens]
        dm = DM8DataModule(f"mysql+mysqldb://{SERVER}", train_table=table_name, batch_size=64, block_size=50,
                           shuffle=False, progress=False)
        labels = [int(y) for _, batch in dm.train_dataloader() for y in batch]
        dm.teardown("fit")
        assert labels == list(range(300))
    finally:
        DatasetTable(f"mysql+pymysql://{SERVER}", table_name).drop()


def test_a_query_may_take_longer_than_the_connect_timeout() -> None:
    """The handshake bound (read_timeout = connect_timeout) is PyMySQL's only: mysqlclient would keep it for every
    query on the connection, failing any query longer than the connect timeout."""
    db = Database(f"mysql+mysqldb://{SERVER}", connect_timeout=1)
    try:
        with db.connect("sleep past the connect timeout") as conn:
            assert conn.execute(sa.text("SELECT SLEEP(2)")).scalar_one() == 0
    finally:
        db.dispose()


def test_a_hung_read_is_cut_off_at_its_socket() -> None:
    db = Database(f"mysql+mysqldb://{SERVER}")
    raw = db.engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert db.backend.socket_fd(driver) is not None
        threading.Timer(0.5, db.backend.sever, (driver,)).start()
        start = time.monotonic()
        with pytest.raises(DatabaseUnavailableError), db.errors("a read of a server that stopped answering"):
            cursor = driver.cursor()
            cursor.execute("SELECT SLEEP(30)")
        assert time.monotonic() - start < 10
    finally:
        raw.invalidate()
        db.dispose()
