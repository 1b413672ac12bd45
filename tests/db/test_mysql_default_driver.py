"""The driver of a ``mysql://`` or ``mariadb://`` URL that names none: mysqlclient when it can be imported (the
faster reader), else PyMySQL; a driver the URL names is always the one used. Round trips run on the real MariaDB.

"Not importable" is simulated with ``sys.modules[name] = None``, which makes ``import name`` fail as if the package
were absent; the database is never stood in for.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

from lightning_dm8 import Database, DatasetTable, DM8DataModule, MissingDriverError, write_arrays
from lightning_dm8.db.urls import mysql_driver, parse_url

SERVER = "root@127.0.0.1:3306/test"
URL = f"mysql://{SERVER}"
needs_mysqlclient = pytest.mark.skipif(importlib.util.find_spec("MySQLdb") is None,
                                       reason="mysqlclient is not installed (it needs libmariadb-dev to build)")


def _not_importable(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.fixture
def without_mysqlclient(monkeypatch: pytest.MonkeyPatch) -> None:
    _not_importable(monkeypatch, "MySQLdb")


@needs_mysqlclient
def test_a_driverless_url_uses_mysqlclient_when_it_is_installed() -> None:
    assert mysql_driver() == "mysqldb"
    assert parse_url("mysql://u@h/db").drivername == "mysql+mysqldb"
    assert parse_url("mariadb://u@h/db").drivername == "mariadb+mysqldb"


@pytest.mark.usefixtures("without_mysqlclient")
def test_a_driverless_url_uses_pymysql_without_mysqlclient() -> None:
    assert mysql_driver() == "pymysql"
    assert parse_url("mysql://u@h/db").drivername == "mysql+pymysql"
    assert parse_url("mariadb://u@h/db").drivername == "mariadb+pymysql"


@pytest.mark.parametrize("mysqlclient", [pytest.param(True, marks=needs_mysqlclient), False],
                         ids=["mysqlclient-installed", "mysqlclient-not-importable"])
@pytest.mark.parametrize("url", ["mysql+pymysql://u@h/db", "mysql+mysqldb://u@h/db", "mariadb+pymysql://u@h/db",
                                 "mariadb+mysqldb://u@h/db"])
def test_a_named_driver_is_always_the_one_used(url: str, mysqlclient: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not mysqlclient:
        _not_importable(monkeypatch, "MySQLdb")
    assert parse_url(url).drivername == url.partition("://")[0]


@pytest.mark.parametrize("driver", [pytest.param("mysqldb", marks=needs_mysqlclient), "pymysql"])
def test_a_dataset_round_trips_through_a_driverless_url(driver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written and read back through ``mysql://`` alone: the write path (multi-row INSERT of binary values with NUL
    bytes) and both read paths run on the driver the URL resolved to."""
    if driver == "pymysql":
        _not_importable(monkeypatch, "MySQLdb")
    name = f"default_driver_{driver}_{os.getpid()}"
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (300, 3, 32, 32), dtype=np.uint8)
    images[:, 0, 0, :4] = 0  # NUL bytes, which the drivers escape in the statement text
    db = Database(URL)
    assert db.engine.dialect.driver == driver
    try:
        write_arrays(db, name, images, np.arange(300) % 10, progress=False)
        block = DatasetTable(db, name).read_range(0, 300)
        np.testing.assert_array_equal(block.features, images)
        dm = DM8DataModule(URL, train_table=name, batch_size=64, block_size=50, shuffle=False, cache_dir=None,
                           progress=False)
        assert dm.db.engine.dialect.driver == driver
        try:
            batches = list(dm.train_dataloader())
        finally:
            dm.teardown("fit")
        np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in batches]), images)
        assert [int(y) for _, labels in batches for y in labels] == [i % 10 for i in range(300)]
    finally:
        DatasetTable(db, name).drop()
        db.dispose()


@pytest.mark.parametrize("url", [URL, f"mysql+pymysql://{SERVER}"])
def test_without_either_driver_the_error_names_both(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _not_importable(monkeypatch, "MySQLdb", "pymysql")
    with pytest.raises(MissingDriverError, match=r"needs PyMySQL \(pip install 'lightning-dm8\[mysql\]'\) or the "
                                                 r"faster mysqlclient \(pip install 'lightning-dm8\[mysqlclient\]'"):
        Database(url).ping()


@pytest.mark.usefixtures("without_mysqlclient")
def test_a_named_mysqlclient_that_is_missing_points_to_its_extra() -> None:
    with pytest.raises(MissingDriverError, match=r"MySQLdb.*lightning-dm8\[mysqlclient\]"):
        Database(f"mysql+mysqldb://{SERVER}").ping()
