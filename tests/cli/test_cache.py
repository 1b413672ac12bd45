"""``lightning-dm8 cache ls | warm | clear``: sizes per dataset, a cache filled before training, and caches removed
only after a yes (and only caches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightning_dm8 import write_arrays
from lightning_dm8.datamodule import DM8DataModule
from lightning_dm8.db.urls import URL_ENV

from .conftest import Run, Terminal


def _dataset(url: str, name: str, n: int = 1000) -> None:
    write_arrays(url, name, np.zeros((n, 16), dtype=np.float32), np.arange(n), progress=False)


def test_warm_then_ls_then_clear(db_url: str, table_name: str, tmp_path: Path, run: Run, monkeypatch) -> None:
    _dataset(db_url, table_name)
    cache = str(tmp_path / "cache")
    code, out, _ = run("cache", "warm", table_name, "--url", db_url, "--cache-dir", cache, "--block-size", "100")
    assert code == 0 and f"{table_name}: cache complete" in out and "10 block(s), 1000 row(s) read" in out
    code, out, _ = run("cache", "warm", table_name, "--url", db_url, "--cache-dir", cache, "--block-size", "100")
    assert code == 0 and "0 block(s), 0 row(s) read" in out  # already complete: nothing is read again

    dm = DM8DataModule(db_url, train_table=table_name, cache_dir=cache, block_size=100, progress=False)
    loader = dm.train_dataloader()
    assert loader.cache_complete and sum(len(y) for _, y in loader) == 1000
    assert dm.epoch_stats["train"].queries == 0  # training starts warm
    dm.teardown("fit")

    code, out, _ = run("cache", "ls", "--cache-dir", cache, "--url", db_url)
    header, _, line = out.splitlines()[:3]
    assert header.split() == ["dataset", "rows", "size", "path"]
    assert line.split()[:2] == [table_name, "1000"] and line.split()[3] == "KiB"
    monkeypatch.setenv(URL_ENV, db_url)  # the default --url
    code, out, _ = run("cache", "ls", "--cache-dir", cache)
    assert code == 0 and out.splitlines()[2].split()[:2] == [table_name, "1000"]

    code, out, err = run("cache", "clear", table_name, "--cache-dir", cache)
    assert code == 2 and "pass --yes" in err and list(Path(cache).iterdir())  # no terminal: nothing removed
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, _ = run("cache", "clear", table_name, "--cache-dir", cache)
    assert code == 1 and "nothing removed" in out and list(Path(cache).iterdir())
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, _ = run("cache", "clear", table_name, "--cache-dir", cache)
    assert code == 0 and "removed 1 cache(s)" in out and not list(Path(cache).iterdir())


def test_ls_without_a_database_and_clear_all(tmp_path: Path, run: Run) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cache = tmp_path / "cache"
    for name in ("first", "second"):
        _dataset(url, name, 300)
        assert run("cache", "warm", name, "--url", url, "--cache-dir", str(cache))[0] == 0
    (cache / "not-a-cache").mkdir()  # left alone: not a cache of this project
    code, out, _ = run("cache", "ls", "--cache-dir", str(cache))
    assert code == 0 and out.splitlines()[0].split() == ["dataset", "size", "path"]
    assert [line.split()[0] for line in out.splitlines()[2:4]] == ["first", "second"]
    code, out, _ = run("cache", "clear", "--all", "--cache-dir", str(cache), "--yes")
    assert code == 0 and "removed 2 cache(s)" in out
    assert [p.name for p in cache.iterdir()] == ["not-a-cache"]
    code, out, _ = run("cache", "ls", "--cache-dir", str(cache))
    assert code == 0 and "(no caches in" in out


def test_cache_mistakes_are_one_line(tmp_path: Path, run: Run) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    code, _, err = run("cache", "clear", "--cache-dir", str(tmp_path))
    assert code == 2 and err == "error: name the dataset whose cache to remove, or pass --all (every cache under " \
                                "--cache-dir)\n"
    code, _, err = run("cache", "warm", "x", "--url", url, "--cache-dir", str(tmp_path))
    assert code == 1 and "there is no database at" in err and not (tmp_path / "c.db").exists()
    _dataset(url, "present", 10)
    code, _, err = run("cache", "warm", "absent", "--url", url, "--cache-dir", str(tmp_path / "cache"))
    assert code == 1 and err.startswith("error: dataset table 'absent' does not exist") and err.count("\n") == 1
    code, _, err = run("cache", "warm", "present", "--url", url, "--block-size", "0")
    assert code == 2 and "--block-size must be at least 1" in err


def test_clear_removes_the_caches_of_column_selections_too(tmp_path: Path, run: Run) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cache = tmp_path / "cache"
    write_arrays(url, "items", {"price": np.arange(200.0), "count": np.arange(200)}, np.arange(200), progress=False)
    _dataset(url, "other", 200)
    for dataset, columns in (("items", None), ("items", ["price"]), ("items", ["count", "price"]), ("other", None)):
        dm = DM8DataModule(url, train_table=dataset, cache_dir=str(cache), columns=columns, progress=False)
        dm.fill_cache(("train",))
        dm.teardown("fit")
    assert len(list(cache.iterdir())) == 4
    code, out, _ = run("cache", "ls", "--cache-dir", str(cache), "--url", url)
    assert code == 0 and [line.split()[0] for line in out.splitlines()[2:]] == ["items", "items", "items", "other"]
    code, out, _ = run("cache", "clear", "items", "--cache-dir", str(cache), "--url", url, "--yes")
    assert code == 0 and "removed 3 cache(s)" in out
    assert [p.name.split("-")[0] for p in cache.iterdir()] == ["other"]
