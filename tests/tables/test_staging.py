"""Tables other than datasets (predictions) publish through ldm8_tables: one transaction, then the view."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lightning_dm8 import Database
from lightning_dm8.errors import TableExistsError
from lightning_dm8.tables.ddl import table_exists
from lightning_dm8.tables.staging import PUBLISHED, publish_staged, published_table, staging_name


def _staged(db: Database, value: int) -> str:
    name = staging_name()
    with db.begin("stage") as conn:
        conn.exec_driver_sql(f"CREATE TABLE {name} (row_id INTEGER PRIMARY KEY, v INTEGER)")
        conn.exec_driver_sql(f"INSERT INTO {name} VALUES (0, {value})")
    return name


def _value(db: Database, name: str) -> int:
    with db.connect("read") as conn:
        return int(conn.exec_driver_sql(f"SELECT v FROM {name}").scalar_one())


def test_publish_then_replace_repoints_the_name_and_drops_the_old_table(db: Database, table_name: str) -> None:
    first = _staged(db, 1)
    publish_staged(db, first, table_name, replace=False)
    assert _value(db, table_name) == 1 and published_table(db, table_name) == first
    second = _staged(db, 2)
    publish_staged(db, second, table_name, replace=True)
    assert _value(db, table_name) == 2 and published_table(db, table_name) == second
    with db.connect("check") as conn:
        assert not table_exists(conn, first) and table_name in sa.inspect(conn).get_view_names()
    third = _staged(db, 3)
    with pytest.raises(TableExistsError, match=rf"table '{table_name}' .* was created while this one was written"):
        publish_staged(db, third, table_name, replace=False)
    assert _value(db, table_name) == 2
    with db.begin("cleanup") as conn:
        db.backend.drop_view(conn, table_name)
        conn.execute(PUBLISHED.delete().where(PUBLISHED.c.name == table_name))
        for name in (second, third):
            conn.exec_driver_sql(f"DROP TABLE {name}")


def test_a_table_from_before_ldm8_tables_is_replaced_when_asked(db: Database, table_name: str) -> None:
    with db.begin("an old predictions table") as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table_name} (row_id INTEGER PRIMARY KEY, v INTEGER)")
    staged = _staged(db, 5)
    publish_staged(db, staged, table_name, replace=True)
    assert _value(db, table_name) == 5
    with db.begin("cleanup") as conn:
        db.backend.drop_view(conn, table_name)
        conn.execute(PUBLISHED.delete().where(PUBLISHED.c.name == table_name))
        conn.exec_driver_sql(f"DROP TABLE {staged}")
