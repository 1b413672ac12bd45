"""Dataset versions: publishing is one registry transaction, readers pin a version, old versions are collected."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa
from ldm8_backends import MODEL_ONE_WRITER

from lightning_dm8 import Database, DatasetTable, write_arrays
from lightning_dm8.errors import DatabaseError, TableExistsError, TableNotFoundError
from lightning_dm8.tables import gc, registry, versions, writer
from lightning_dm8.tables.ddl import table_exists
from lightning_dm8.tables.staging import staging_name


def _labels(db: Database, name: str) -> list[int]:
    table = DatasetTable(db, name)
    block = table.read_range(0, len(table))
    return block.labels.tolist()


def _write(db: Database, name: str, value: int, rows: int = 6, **kwargs) -> registry.DatasetInfo:
    """A version whose every label is ``value``: a mixed read would show two values."""
    return write_arrays(db, name, np.full((rows, 2), value, np.int16), np.full(rows, value), progress=False, **kwargs)


def _plain_sql_count(db: Database, name: str) -> int:
    with db.connect("plain SQL") as conn:
        quoted = conn.dialect.identifier_preparer.quote(name)
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {quoted}").scalar_one())


def test_each_write_is_a_version_and_older_ones_stay_readable(db: Database, table_name: str) -> None:
    first = _write(db, table_name, 1, rows=4)
    second = _write(db, table_name, 2, rows=7, if_exists="replace")
    assert (first.version, second.version) == (1, 2) and first.physical != second.physical
    assert _labels(db, table_name) == [2] * 7
    assert _labels(db, f"{table_name}@1") == [1] * 4  # pinned readers of version 1 still read it whole
    assert len(DatasetTable(db, f"{table_name}@2")) == 7
    assert _plain_sql_count(db, table_name) == 7  # the dataset's name is a view of the current version
    with pytest.raises(TableNotFoundError, match=rf"dataset table '{table_name}@9' does not exist"):
        DatasetTable(db, f"{table_name}@9").info()


def test_append_is_a_version_sharing_the_table(db: Database, table_name: str) -> None:
    first = _write(db, table_name, 1, rows=5)
    appended = _write(db, table_name, 1, rows=3, if_exists="append")
    assert appended.version == 2 and appended.physical == first.physical and appended.row_count == 8
    assert appended.cache_lineage == first.cache_lineage  # blocks cached from version 1 stay valid
    assert len(DatasetTable(db, f"{table_name}@1")) == 5 and len(DatasetTable(db, table_name)) == 8
    assert _plain_sql_count(db, table_name) == 8


def test_keep_versions_drops_older_tables(db: Database, table_name: str) -> None:
    first = _write(db, table_name, 1)
    second = _write(db, table_name, 2, if_exists="replace", keep_versions=1)
    with db.connect("check") as conn:
        assert not table_exists(conn, first.physical) and table_exists(conn, second.physical)
        assert [i.version for i in registry.list_versions(conn, table_name)] == [2]
    with pytest.raises(TableNotFoundError):
        DatasetTable(db, f"{table_name}@1").info()


@pytest.mark.parametrize("step", ["fill", "analyze", "publish"])
def test_a_failure_at_any_step_keeps_the_previous_version(db: Database, table_name: str, step: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = _write(db, table_name, 1)
    boom = DatabaseError(f"injected failure in {step}")

    def fail(*args, **kwargs):
        raise boom

    target = {"fill": (writer, "_fill"), "analyze": (type(db.backend), "analyze_table"),
              "publish": (registry, "write_head")}[step]
    monkeypatch.setattr(*target, fail)
    with pytest.raises(DatabaseError, match=f"injected failure in {step}"):
        _write(db, table_name, 2, if_exists="replace")
    monkeypatch.undo()
    assert DatasetTable(db, table_name).info().version == before.version
    assert _labels(db, table_name) == [1] * 6 and _plain_sql_count(db, table_name) == 6
    with db.connect("check") as conn:  # the failed version's table is gone
        physical = {t for t in sa.inspect(conn).get_table_names() if t.startswith(versions.PHYSICAL_PREFIX)}
        assert {i.table_name for i in registry.list_versions(conn, table_name)} == {before.physical}
    assert before.physical in physical


def test_a_failed_view_step_leaves_the_registry_right_and_is_repaired(db: Database, table_name: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _write(db, table_name, 1)

    def fail(*args, **kwargs):
        raise DatabaseError("injected failure in the view step")

    monkeypatch.setattr(type(db.backend), "replace_view", fail)
    second = _write(db, table_name, 2, rows=9, if_exists="replace")  # the write itself succeeds
    monkeypatch.undo()
    assert DatasetTable(db, table_name).info().version == second.version
    assert _labels(db, table_name) == [2] * 9  # readers go by the registry, not by the view
    assert _plain_sql_count(db, table_name) == 6  # the view still shows version 1 ...
    assert versions.repair_view(db, table_name)
    assert _plain_sql_count(db, table_name) == 9  # ... until it is repaired


@pytest.mark.requires_real_dm8(MODEL_ONE_WRITER)  # the model turns both publishes' SELECT ... FOR UPDATE into its lock
def test_two_fail_writers_racing_exactly_one_wins(db: Database, table_name: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Both pass the existence check and fill their tables; the registry's unique key picks one."""
    publish = versions.publish
    barrier = threading.Barrier(2, timeout=60)

    def racing(*args, **kwargs):
        barrier.wait()
        return publish(*args, **kwargs)

    monkeypatch.setattr(versions, "publish", racing)
    outcomes: dict[int, object] = {}

    def run(value: int) -> None:
        own = Database(db.sa_url)
        try:
            outcomes[value] = _write(own, table_name, value, rows=3 + value)
        except Exception as exc:
            outcomes[value] = exc
        finally:
            own.dispose()

    threads = [threading.Thread(target=run, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    winners = [v for v, o in outcomes.items() if isinstance(o, registry.DatasetInfo)]
    losers = [o for o in outcomes.values() if not isinstance(o, registry.DatasetInfo)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], TableExistsError) and "another writer published it first" in str(losers[0])
    assert _labels(db, table_name) == [winners[0]] * (3 + winners[0])
    with db.connect("check") as conn:
        assert [i.version for i in registry.list_versions(conn, table_name)] == [1]


def _make_legacy(db: Database, name: str) -> None:
    """Turn dataset ``name`` into what a release before versions wrote: its rows in a table under its own name."""
    with db.begin("make legacy") as conn:
        info = registry.read_info(conn, name)
        db.backend.drop_view(conn, name)
    with db.begin("rename") as conn:
        db.backend.rename_table(conn, info.physical, name)
    with db.begin("forget versions") as conn:
        conn.execute(registry.VERSIONS.delete().where(registry.VERSIONS.c.name == name))
        conn.execute(registry.REGISTRY.update().where(registry.REGISTRY.c.name == name).values(current_version=None))


def test_a_dataset_from_before_versions_is_read_then_adopted(db: Database, table_name: str) -> None:
    _write(db, table_name, 1)
    _make_legacy(db, table_name)
    legacy = DatasetTable(db, table_name).info()
    assert legacy.version == 0 and legacy.table_name == table_name and _labels(db, table_name) == [1] * 6
    second = _write(db, table_name, 2, rows=3, if_exists="replace")  # the first write adopts it as version 1
    assert second.version == 2
    assert _labels(db, f"{table_name}@1") == [1] * 6 and _labels(db, table_name) == [2] * 3
    assert DatasetTable(db, f"{table_name}@1").info().physical == versions.adopted_name(table_name)
    assert _plain_sql_count(db, table_name) == 3


def test_adoption_cut_short_after_the_rename_is_finished_later(db: Database, table_name: str) -> None:
    _write(db, table_name, 1)
    _make_legacy(db, table_name)
    with db.begin("the rename of a killed adopter") as conn:
        db.backend.rename_table(conn, table_name, versions.adopted_name(table_name))
    adopted = versions.adopt(db, table_name)
    assert adopted is not None and adopted.version == 1
    assert _labels(db, table_name) == [1] * 6 and _plain_sql_count(db, table_name) == 6


def test_a_registry_from_before_versions_gains_its_column(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    with db.begin("an old registry") as conn:
        conn.exec_driver_sql(
            "CREATE TABLE ldm8_datasets (name VARCHAR(255) PRIMARY KEY, row_count BIGINT NOT NULL, "
            "codec VARCHAR(2000) NOT NULL, label_kind VARCHAR(16) NOT NULL, fingerprint VARCHAR(64) NOT NULL, "
            "created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)")
        conn.exec_driver_sql(
            "CREATE TABLE old (row_id INTEGER PRIMARY KEY, features BLOB NOT NULL, label BIGINT NOT NULL)")
        conn.exec_driver_sql("INSERT INTO old VALUES (0, X'0100', 5)")
        conn.exec_driver_sql(
            "INSERT INTO ldm8_datasets VALUES ('old', 1, '{\"kind\": \"array\", \"dtype\": \"<i2\", \"shape\": [1]}', "
            "'int', 'f', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    assert _labels(db, "old") == [5]
    info = _write(db, "old", 7, if_exists="replace")
    assert info.version == 2 and _labels(db, "old@1") == [5]
    db.dispose()


def test_gc_drops_old_versions_and_killed_writers_tables_only(db: Database, table_name: str) -> None:
    versions_written = [_write(db, table_name, v, if_exists="replace", keep_versions=5) for v in (1, 2, 3)]
    old = f"{versions.PHYSICAL_PREFIX}{int(time.time()) - 7200:08x}_{'ab' * 4}"
    young = versions.new_physical_name()
    stale_staging = staging_name().replace(staging_name().split("_")[2], f"{int(time.time()) - 7200:08x}")
    with db.begin("leftovers of killed writers") as conn:
        for name in (old, young, stale_staging):
            conn.exec_driver_sql(f"CREATE TABLE {name} (a INTEGER)")
    try:
        preview = gc.collect(db, keep=1, dry_run=True)
        assert f"{table_name}@1" in preview.versions and f"{table_name}@2" in preview.versions
        assert {old, stale_staging} <= set(preview.tables) and young not in preview.tables
        with db.connect("nothing dropped yet") as conn:
            assert table_exists(conn, versions_written[0].physical) and table_exists(conn, old)
        done = gc.collect(db, keep=1, dry_run=False)
        assert set(done.tables) >= {old, stale_staging, versions_written[0].physical, versions_written[1].physical}
        with db.connect("check") as conn:
            assert not table_exists(conn, old) and not table_exists(conn, stale_staging)
            assert table_exists(conn, young) and table_exists(conn, versions_written[2].physical)
        assert _labels(db, table_name) == [3] * 6
    finally:
        with db.begin("cleanup") as conn:
            for name in (old, young, stale_staging):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
