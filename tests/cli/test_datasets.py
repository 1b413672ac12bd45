"""``lightning-dm8 import | ls | info | drop``: only registered datasets are dropped, never without a yes, and names
from the database reach the terminal escaped."""

from __future__ import annotations

import datetime as dt
import json
import sys

import numpy as np
import pytest
import sqlalchemy as sa

from lightning_dm8 import DatasetTable, write_arrays
from lightning_dm8.db.engine import Database
from lightning_dm8.db.urls import URL_ENV
from lightning_dm8.errors import TableNotFoundError
from lightning_dm8.tables.codecs import FeatureCodec
from lightning_dm8.tables.registry import DatasetInfo

from .conftest import Run, Terminal


def _dataset(url: str, name: str, n: int = 5) -> None:
    write_arrays(url, name, np.zeros((n, 2), dtype=np.float32), np.arange(n), progress=False)


def _tables(url: str) -> list[str]:
    db = Database(url)
    with db.connect() as conn:
        names = sa.inspect(conn).get_table_names()
    db.dispose()
    return names


def test_ls_info_and_drop_of_a_dataset(db_url: str, table_name: str, run: Run) -> None:
    _dataset(db_url, table_name)
    code, out, _ = run("ls", "--url", db_url)
    assert code == 0 and out.splitlines()[0].split()[:4] == ["name", "version", "rows", "features"]
    assert any(line.split()[:3] == [table_name, "1", "5"] for line in out.splitlines()[2:])
    code, out, _ = run("info", table_name, "--url", db_url)
    assert code == 0 and json.loads(out)["rows"] == 5
    code, out, _ = run("drop", table_name, "--url", db_url, "--yes")
    assert code == 0 and out == f"dropped {table_name}\n"
    code, _, err = run("info", table_name, "--url", db_url)
    assert code == 1 and err.startswith("error: ") and "does not exist" in err


def test_ls_and_info_show_the_columns_of_a_record(db_url: str, table_name: str, run: Run) -> None:
    features = {"image": np.zeros((3, 2, 2), np.uint8), "tokens": [np.arange(i, dtype=np.int32) for i in range(3)],
                "title": ["a", "b", "c"], "price": [1.5, 2.5, 3.5]}
    write_arrays(db_url, table_name, features, {"y": [0, 1, 2], "tags": np.eye(3, dtype=np.float32)},
                 progress=False)
    code, out, _ = run("ls", "--url", db_url)
    line = next(line for line in out.splitlines() if line.startswith(f"{table_name} "))
    assert "record(image:uint8[2, 2], tokens:int32[], title:text, price:float)" in line
    assert "y:int, tags:float32[3]" in line
    code, out, _ = run("info", table_name, "--url", db_url)
    described = json.loads(out)
    assert code == 0 and (described["features"], described["label"]) == ("record", "columns")
    assert described["fields"][0] == {"name": "image", "kind": "array", "dtype": "|u1", "shape": [2, 2]}
    assert [f["kind"] for f in described["fields"]] == ["array", "varlen", "text", "float"]
    assert described["targets"] == [{"name": "y", "kind": "int", "dtype": None, "shape": []},
                                    {"name": "tags", "kind": "array", "dtype": "<f4", "shape": [3]}]


def test_gc_lists_then_drops_old_versions(db_url: str, table_name: str, run: Run) -> None:
    for _ in range(3):
        write_arrays(db_url, table_name, np.zeros((5, 2), np.float32), np.arange(5), if_exists="replace",
                     keep_versions=5, progress=False)
    code, out, _ = run("gc", "--keep", "1", "--url", db_url)
    assert code == 0 and f"would drop version {table_name}@1" in out and f"would drop version {table_name}@2" in out
    assert out.rstrip().endswith("(a dry run: pass --apply to drop them)")
    code, out, _ = run("gc", "--keep", "1", "--apply", "--url", db_url)
    assert code == 0 and f"dropped version {table_name}@1" in out
    code, out, _ = run("info", f"{table_name}@1", "--url", db_url)
    assert code == 1
    code, out, _ = run("info", table_name, "--url", db_url)
    assert code == 0 and json.loads(out)["version"] == 3
    code, _, err = run("gc", "--keep", "0", "--url", db_url)
    assert code == 2 and err == "error: --keep must be at least 1 (the current version); got 0\n"


def test_drop_refuses_tables_that_are_not_datasets(db_url: str, table_name: str, run: Run) -> None:
    _dataset(db_url, table_name)  # the registry exists
    users = f"{table_name}_users"
    db = Database(db_url)
    with db.begin() as conn:
        sa.Table(users, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)).create(conn)
    db.dispose()
    code, out, err = run("drop", users, "--url", db_url, "--yes")
    assert (code, out) == (2, "")
    assert err == (f"error: {users!r} is not a dataset in the registry of {Database(db_url).url}: drop removes only "
                   f"dataset tables made by lightning_dm8, never other tables (`lightning-dm8 ls` lists the "
                   f"datasets)\n")
    for reserved in ("ldm8_datasets", "LDM8_checkpoints", "ldm8_tmp_0123456789ab"):
        code, _, err = run("drop", reserved, "--url", db_url, "--yes")
        assert code == 2 and "reserved" in err and "drop removes datasets only" in err
    assert {users.lower(), "ldm8_datasets"} <= {t.lower() for t in _tables(db_url)}
    assert len(DatasetTable(db_url, table_name)) == 5  # the registry still works


@pytest.mark.parametrize("backend", ["sqlite"])
def test_drop_asks_and_needs_yes_without_a_terminal(db_url: str, table_name: str, run: Run,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _dataset(db_url, table_name)
    code, out, err = run("drop", table_name, "--url", db_url)  # stdin is not a terminal
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "EOFError" not in err and "Traceback" not in err
    assert err.startswith(f"error: Drop dataset {table_name!r} (5 rows) from ") and err.endswith(
        "? There is no terminal to confirm it: pass --yes to go ahead\n")
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    code, out, _ = run("drop", table_name, "--url", db_url)
    assert code == 1 and out == "not dropped\n" and len(DatasetTable(db_url, table_name)) == 5
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    code, out, _ = run("drop", table_name, "--url", db_url)
    assert code == 0 and out == f"dropped {table_name}\n"
    with pytest.raises(TableNotFoundError):
        len(DatasetTable(db_url, table_name))


def test_ls_escapes_control_characters_in_names(run: Run, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = "cats\x1b[2J\x1b[1;1Hall clear\n\u202eevil"  # clear the screen, move the cursor, reverse the text
    stamp = dt.datetime(2024, 1, 2, 3, 4)
    info = DatasetInfo(hostile, 3, FeatureCodec("bytes"), "int", "f" * 64, stamp, stamp)
    monkeypatch.setattr("lightning_dm8.cli.datasets.list_infos", lambda conn: [info])
    url = f"sqlite:///{tmp_path / 'x.db'}"
    _dataset(url, "plain")
    code, out, _ = run("ls", "--url", url)
    assert code == 0
    assert "\x1b" not in out and "\u202e" not in out and len(out.splitlines()) == 3
    assert "cats\\x1b[2J\\x1b[1;1Hall clear\\n\\u202eevil" in out


def test_the_url_comes_from_the_environment(tmp_path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run("ls")
    assert code == 2 and err == (f"error: no database given: pass --url URL or set {URL_ENV} (which keeps a "
                                 f"password off the command line)\n")
    url = f"sqlite:///{tmp_path / 'env.db'}"
    _dataset(url, "from_env")
    monkeypatch.setenv(URL_ENV, url)
    code, out, _ = run("ls")
    assert code == 0 and "from_env" in out
    code, _, err = run("checkpoints", "list")
    assert code == 1 and "in sqlite:///" in err and "env.db: nothing has been saved there yet" in err


def test_reading_commands_never_create_a_database_file(tmp_path, run: Run) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    for argv in (("ls",), ("info", "x"), ("drop", "x", "--yes"), ("checkpoints", "list")):
        code, _, err = run(*argv, "--url", url)
        assert code == 1 and "there is no database at sqlite:///" in err and "the file does not exist" in err
    assert not (tmp_path / "typo.db").exists()
