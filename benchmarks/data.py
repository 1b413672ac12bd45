"""The benchmark's data: CIFAR-sized images and AG-News-sized token rows, made from a seed, written per backend.

* ``cifar``: ``(3, 32, 32)`` uint8 (3,072 random, incompressible bytes) + an int label 0..9.
* ``agnews``: 1-D int64 token ids, lengths 30..60 (mean ~45, 360 bytes), ids < 30,522 + an int label 0..3.

The same arrays feed every method (the project's loader reads them back from the dataset table the project's own
``write_arrays`` made; the baselines read that same table, or hold the arrays in memory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_dm8 import DatasetTable, write_arrays
from lightning_dm8.db.engine import Database

PG_URL = os.environ.get("LIGHTNING_DM8_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LIGHTNING_DM8_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
"""No driver named: the loader reads through the one a driver-less URL resolves to, the fastest installed."""
TABLE_PREFIX = "ldm8bench_"


@dataclass
class Samples:
    """One data set in memory: features (an array, or a list of 1-D arrays) and int64 labels."""

    name: str
    features: Any
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def ragged(self) -> bool:
        return not isinstance(self.features, np.ndarray)

    @property
    def nbytes(self) -> int:
        """Raw payload: features + 8-byte labels (what a plain binary dump would hold)."""
        if self.ragged:
            return int(sum(f.nbytes for f in self.features)) + 8 * len(self)
        return int(self.features.nbytes) + 8 * len(self)

    def head(self, n: int) -> Samples:
        return Samples(self.name, self.features[:n], self.labels[:n])


def cifar(rows: int, seed: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    return Samples("cifar", rng.integers(0, 256, (rows, 3, 32, 32), dtype=np.uint8),
                   rng.integers(0, 10, rows).astype(np.int64))


def agnews(rows: int, seed: int = 1) -> Samples:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(30, 61, rows)
    flat = rng.integers(0, 30_522, int(lengths.sum()), dtype=np.int64)
    cuts = np.cumsum(lengths)[:-1]
    return Samples("agnews", list(np.split(flat, cuts)), rng.integers(0, 4, rows).astype(np.int64))


def make(name: str, rows: int) -> Samples:
    return cifar(rows) if name == "cifar" else agnews(rows)


def backend_url(backend: str, tmp: Path, dm8_url: str | None = None) -> str:
    """The URL measured for ``backend``: a SQLite file under ``tmp``, the local servers, or the DM8 URL given."""
    urls = {"sqlite": f"sqlite:///{tmp / 'bench.db'}", "postgresql": PG_URL, "mysql": MYSQL_URL, "dm": dm8_url}
    if backend not in urls:
        raise ValueError(f"unknown backend {backend!r}; use sqlite, postgresql, mysql or dm")
    if not urls[backend]:
        raise ValueError("DM8 needs --dm8-url or LIGHTNING_DM8_TEST_URL")
    return str(urls[backend])


def table_name(dataset: str, rows: int) -> str:
    return f"{TABLE_PREFIX}{dataset}_{rows}"


def write(url: str, samples: Samples, rows: int | None = None, chunk: int = 50_000) -> str:
    """Write the first ``rows`` samples as a dataset table (replacing one left by an earlier run)."""
    rows = len(samples) if rows is None else rows
    name = table_name(samples.name, rows)
    for start in range(0, rows, chunk):
        stop = min(rows, start + chunk)
        write_arrays(url, name, samples.features[start:stop], samples.labels[start:stop],
                     if_exists="replace" if start == 0 else "append", progress=False)
    return name


def write_large(url: str, dataset: str, rows: int, chunk: int = 50_000) -> str:
    """A large table written in chunks made on the fly (never all in memory); rows repeat the seed's pattern."""
    name = table_name(dataset, rows)
    for i, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        part = cifar(n, seed=i) if dataset == "cifar" else agnews(n, seed=1000 + i)
        write_arrays(url, name, part.features, part.labels, if_exists="replace" if start == 0 else "append",
                     progress=False)
    return name


def drop(url: str, names: list[str]) -> None:
    db = Database(url)
    try:
        for name in names:
            try:
                DatasetTable(db, name).drop()
            except Exception:  # best effort: a table that never got written
                pass
    finally:
        db.dispose()


def table_bytes(url: str, name: str) -> int | None:
    """The size of the table holding the dataset ``name``'s rows (its version's physical table) in the database:
    heap + TOAST + indexes on PostgreSQL, data + index on MySQL, pages on SQLite; None where it cannot be read."""
    from lightning_dm8 import DatasetTable

    table = DatasetTable(url, name).info().physical or name
    db = Database(url)
    try:
        with db.connect("table size") as conn:
            if db.backend.name == "postgresql":
                size = conn.exec_driver_sql("SELECT pg_total_relation_size(%(t)s)", {"t": table}).scalar()
            elif db.backend.name == "mysql":
                conn.exec_driver_sql(f"ANALYZE TABLE `{table}`")
                size = conn.exec_driver_sql(
                    "SELECT data_length + index_length FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name = %s", (table,)).scalar()
            elif db.backend.name == "sqlite":
                try:
                    size = conn.exec_driver_sql("SELECT SUM(pgsize) FROM dbstat WHERE name = ?", (table,)).scalar()
                except Exception:
                    size = None
            else:
                size = None
    finally:
        db.dispose()
    return None if size is None else int(size)
