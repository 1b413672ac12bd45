"""A writer killed (SIGKILL) at random moments while it replaces a dataset: the dataset is always readable and
always exactly one version — never a mix, never missing, its row count that version's."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time

import numpy as np
import pytest
import sqlalchemy as sa

from lightning_dm8 import Database, DatasetTable, write_arrays
from lightning_dm8.tables import gc, registry, versions

KILLS = 20


def _rows_for(value: int) -> int:
    return 40 + (value * 37) % 97


def _write_version(db: Database, name: str, value: int, if_exists: str) -> None:
    """Version ``value``: its own row count, every label and feature equal to ``value``."""
    rows = _rows_for(value)
    write_arrays(db, name, np.full((rows, 4), value, np.int32), np.full(rows, value), if_exists=if_exists,
                 progress=False)


def _replace_forever(url: str, name: str, first: int) -> None:
    """The child: replace the dataset again and again until it is killed."""
    db = Database(url)
    value = first
    while True:
        _write_version(db, name, value, "replace")
        value += 1


def _check_one_version(db: Database, name: str) -> int:
    table = DatasetTable(db, name)
    info = table.info()
    block = table.read_range(0, len(table))
    values = set(block.labels.tolist()) | set(np.unique(block.features).tolist())
    assert len(values) == 1, f"a mix of versions: {sorted(values)[:10]}"
    value = values.pop()
    assert info.row_count == _rows_for(value) == len(block), "the row count is not that version's"
    return value


@pytest.mark.slow
def test_replace_killed_at_random_moments(db_url: str, table_name: str) -> None:
    db = Database(db_url)
    _write_version(db, table_name, 1, "fail")
    rng = random.Random(20261130)
    context = multiprocessing.get_context("fork")
    seen: list[int] = []
    first = 2
    for _ in range(KILLS):
        child = context.Process(target=_replace_forever, args=(db_url, table_name, first), daemon=True)
        child.start()
        time.sleep(rng.uniform(0.05, 0.8))
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        db.dispose()  # the child shared nothing, but start each check on fresh connections
        seen.append(_check_one_version(db, table_name))
        first += 1000
    # The kills landed at different points: more than one version was current at some check.
    assert len(set(seen)) > 1, seen
    with db.connect("leftovers") as conn:
        named = {i.table_name for i in registry.list_versions(conn)}
        orphans = {t for t in sa.inspect(conn).get_table_names()
                   if t.startswith(versions.PHYSICAL_PREFIX) and t not in named}
    # Killed writers' tables are what gc removes (a dry run on the shared servers: other tests' writers may be at
    # work there; on this test's own SQLite file, for real).
    preview = gc.collect(db, keep=1, min_age=0, dry_run=True)
    assert orphans <= set(preview.tables)
    print(f"\n{db.backend.name}: {KILLS} kills, {len(set(seen))} distinct versions seen, {len(orphans)} tables of "
          f"killed writers left for gc")
    if db.backend.name == "sqlite":
        gc.collect(db, keep=1, min_age=0, dry_run=False)
        with db.connect("after gc") as conn:
            left = {t for t in sa.inspect(conn).get_table_names() if t.startswith(versions.PHYSICAL_PREFIX)}
            assert left == {i.table_name for i in registry.list_versions(conn)}
    _check_one_version(db, table_name)
    db.dispose()
