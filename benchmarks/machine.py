"""What the figures were measured on: CPU, cores, RAM, and versions of Python, libraries, drivers and servers."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sqlite3
from typing import Any

import sqlalchemy as sa

PACKAGES = ("torch", "lightning", "numpy", "lmdb", "SQLAlchemy", "psycopg", "psycopg-binary", "PyMySQL",
            "mysqlclient", "connectorx", "adbc-driver-postgresql", "pyarrow", "litdata", "matplotlib")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return 0.0


def server_version(url: str) -> str:
    """The database server's version string (SQLite: the library's)."""
    backend = sa.engine.make_url(url).get_backend_name()
    if backend == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    from lightning_dm8.db.engine import Database

    db = Database(url)
    try:
        with db.connect("server version") as conn:
            if backend == "postgresql":
                return str(conn.exec_driver_sql("SELECT version()").scalar()).split(" on ")[0]
            if backend in ("mysql", "mariadb"):
                return "MariaDB/MySQL " + str(conn.exec_driver_sql("SELECT VERSION()").scalar())
            return str(db.engine.dialect.server_version_info)
    except Exception as exc:  # noqa: BLE001 - a description, not a failure
        return f"unknown ({type(exc).__name__})"
    finally:
        db.dispose()


def mysql_reader(url: str) -> str:
    """The driver the loader reads MySQL/MariaDB through: a URL naming none gets mysqlclient when it is installed."""
    from lightning_dm8.db.urls import parse_url

    driver = parse_url(url).get_driver_name()
    return {"mysqldb": "mysqlclient", "pymysql": "PyMySQL"}.get(driver, driver)


def describe(urls: dict[str, str]) -> dict[str, Any]:
    import torch

    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        import psycopg

        versions["libpq"] = str(psycopg.pq.version())
    except Exception:  # noqa: BLE001
        pass
    if "mysql" in urls:
        versions["MySQL reader"] = mysql_reader(urls["mysql"])
    return {
        "cpu_model": _cpu_model(), "cores": os.cpu_count(), "ram_gib": _ram_gib(),
        "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "versions": versions, "servers": {b: server_version(u) for b, u in urls.items()},
    }
