"""The cache is private and never trusted blindly.

* Directories are created 0700 and LMDB's files 0600, whatever the umask.
* A cache directory (or ``cache_dir``) that another user owns, or that group or others can write, is refused with
  an error naming the directory and what to do.
* A cached block that is not what the project wrote for it (someone else's bytes, another block's value, a
  truncated or bit-flipped one) is read again from the database and replaces the bad entry: the epoch still delivers
  exactly the database rows, each once. With the database unreachable then, a clear error, and the block is never
  served.
* An unknown ``cache_on_full`` value is refused.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from reliability.support import assert_exactly_once, check_batch, through_forwarder, write_labelled

from lightning_dm8 import DatabaseUnavailableError
from lightning_dm8.loading import cache as cache_module
from lightning_dm8.loading.cache import BlockCache, UnsafeCacheError, cache_path, cached_info, check_on_full
from lightning_dm8.loading.cache_format import CorruptBlockError, check_packed
from loading.support import make_dm

N_ROWS, BLOCK, BAD = 500, 64, 3
NOBODY = 65534


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for the test; the previous one is restored afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


# --- private files and directories ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_cache_directories_and_files_are_private_whatever_the_umask(tmp_path: Path, umask, mask: int) -> None:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    write_labelled(url, "data", N_ROWS)
    umask(mask)
    cache_dir = tmp_path / "home" / "cache"  # neither exists yet
    dm = make_dm(url, "data", cache_dir, block_size=BLOCK)
    dm.prepare_data()
    dm.setup("fit")
    for _ in dm.train_dataloader():
        pass
    dm.teardown("fit")
    table_dir = cache_path(cache_dir, dm.db, "data")
    assert {d.name: oct(mode_of(d)) for d in (tmp_path / "home", cache_dir, table_dir)} == {
        "home": "0o700", "cache": "0o700", table_dir.name: "0o700"}
    assert {f: oct(mode_of(table_dir / f)) for f in ("data.mdb", "lock.mdb")} == {
        "data.mdb": "0o600", "lock.mdb": "0o600"}


def test_a_cache_an_older_version_left_readable_is_made_private(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 2)
    cache.put(0, b"x")
    cache.close()
    os.chmod(tmp_path / "c", 0o755)
    for name in ("data.mdb", "lock.mdb"):
        os.chmod(tmp_path / "c" / name, 0o644)
    cache = BlockCache(tmp_path / "c", "fp", 8, 2)
    assert cache.get(0) == b"x"
    cache.close()
    assert [mode_of(tmp_path / "c" / name) for name in ("", "data.mdb", "lock.mdb")] == [0o700, 0o600, 0o600]


@pytest.mark.parametrize("where", ["table directory", "cache_dir"])
@pytest.mark.parametrize(("mode", "who"), [(0o777, "group and others"), (0o770, "group"), (0o1757, "others")],
                         ids=["0777", "0770", "sticky-1757"])
def test_a_cache_directory_others_can_write_is_refused(tmp_path: Path, where: str, mode: int, who: str) -> None:
    path = tmp_path / "cache" / "data-0123"
    first = BlockCache(path, "fp", 8, 2)
    first.put(0, b"mine")
    first.close()
    loose = path if where == "table directory" else path.parent
    os.chmod(loose, mode)
    cache = BlockCache(path, "fp", 8, 2)
    with pytest.raises(UnsafeCacheError) as raised:
        cache.get(0)
    message = str(raised.value)
    assert f"the cache directory {loose} can be written by {who} (mode {mode:04o})" in message
    assert f"chmod go-w {loose}" in message and "cache_dir" in message
    with pytest.raises(UnsafeCacheError):
        cached_info(path, 8)  # a run starting from the cache alone is refused the same way
    os.chmod(loose, 0o700)
    assert cache.get(0) == b"mine"  # nothing was changed or removed
    cache.close()


def test_a_new_cache_under_a_cache_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(UnsafeCacheError, match=f"the cache directory {shared} can be written by group and others"):
        BlockCache(shared / "data-0123", "fp", 8, 2).get(0)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
@pytest.mark.parametrize("what", ["table directory", "cache_dir", "data.mdb"])
def test_a_cache_owned_by_another_user_is_refused(tmp_path: Path, what: str) -> None:
    path = tmp_path / "cache" / "data-0123"
    first = BlockCache(path, "fp", 8, 2)
    first.put(0, b"mine")
    first.close()
    foreign = {"table directory": path, "cache_dir": path.parent, "data.mdb": path / "data.mdb"}[what]
    os.chown(foreign, NOBODY, NOBODY)
    cache = BlockCache(path, "fp", 8, 2)
    with pytest.raises(UnsafeCacheError) as raised:
        cache.get(0)
    message = str(raised.value)
    kind = "file" if what == "data.mdb" else "directory"
    assert f"the cache {kind} {foreign} belongs to user 'nobody' (uid {NOBODY}), not to you" in message
    assert "set cache_dir" in message.lower()
    os.chown(foreign, 0, 0)
    assert cache.get(0) == b"mine"
    cache.close()


def test_the_owner_check_compares_with_this_process_user(tmp_path: Path, monkeypatch) -> None:
    """Without root too: a cache directory whose owner is not the effective user (nor root) is refused."""
    path = tmp_path / "c"
    BlockCache(path, "fp", 8, 2).close()
    owners = {path.parent: 4242, path: 4243}  # cache_dir is "ours" (4242), the table directory another user's
    real_stat = os.stat

    def stat_with_owners(target, *args, **kwargs):
        result = real_stat(target, *args, **kwargs)
        owner = owners.get(Path(target))
        return result if owner is None else os.stat_result((*result[:4], owner, *result[5:]))

    monkeypatch.setattr(cache_module.os, "geteuid", lambda: 4242)
    monkeypatch.setattr(cache_module.os, "stat", stat_with_owners)
    with pytest.raises(UnsafeCacheError, match=f"the cache directory {path} belongs to uid 4243, not to you "
                                               f"\\(uid 4242\\)"):
        BlockCache(path, "fp", 8, 2).get(0)


# --- enumerated options ---------------------------------------------------------------------------------------------

def test_an_unknown_cache_on_full_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cache_on_full must be one of 'error', 'skip'; got 'skpi'"):
        BlockCache(tmp_path / "c", "fp", 8, 2, on_full="skpi")  # type: ignore[arg-type]
    assert check_on_full("skip") == "skip" and check_on_full("error") == "error"
    assert not (tmp_path / "c").exists()


# --- checked blocks -------------------------------------------------------------------------------------------------

def _filled(url: str, table: str, tmp_path: Path, shuffle: bool, **options):
    """A data module whose first (cold) epoch filled the cache, the features written, and the dataset's cache."""
    features = write_labelled(url, table, N_ROWS)
    dm = make_dm(url, table, tmp_path / "cache", block_size=BLOCK, shuffle=shuffle, seed=5, **options)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    ids = np.concatenate([check_batch(x, y, features) for x, y in loader])
    assert_exactly_once(ids, N_ROWS)
    cache = dm.datasets["train"].cache
    assert cache is not None and cache.is_complete()
    return dm, loader, features, cache


def _bad_values(cache: BlockCache) -> dict[str, bytes]:
    good, other = cache.get(BAD), cache.get(BAD + 2)
    assert good is not None and other is not None
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    return {
        "someone-elses-bytes": b"training data from someone else " * 40,
        "another-blocks-value": other,  # a valid packed block, with its own checksum, under the wrong key
        "truncated": good[: len(good) // 2],
        "cut-in-the-header": good[:10],
        "bit-flip": bytes(flipped),
    }


@pytest.mark.parametrize("shuffle", [True, False], ids=["warm-random-access", "streaming"])
@pytest.mark.parametrize("bad", ["someone-elses-bytes", "another-blocks-value", "truncated", "cut-in-the-header",
                                 "bit-flip"])
def test_a_bad_cached_block_is_read_again_from_the_database(tmp_path: Path, caplog, shuffle: bool, bad: str) -> None:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    dm, loader, features, cache = _filled(url, "data", tmp_path, shuffle)
    cache.put(BAD, _bad_values(cache)[bad])
    for epoch in range(2):  # the bad entry is replaced in the first: the second reads only the cache
        with caplog.at_level(logging.WARNING, logger="lightning_dm8"):
            ids = np.concatenate([check_batch(x, y, features) for x, y in loader])
        assert_exactly_once(ids, N_ROWS)
        stats = dm.epoch_stats["train"]
        expected = (1, 1, BLOCK) if epoch == 0 else (0, 0, 0)
        assert (stats.replaced_blocks, stats.queries, stats.rows_from_db) == expected
        assert stats.rows_from_cache == N_ROWS - (BLOCK if epoch == 0 else 0)
    warnings = [r.getMessage() for r in caplog.records if "reading it again from the database" in r.getMessage()]
    assert len(warnings) == 1 and f"cached block {BAD} (rows {BAD * BLOCK}..{BAD * BLOCK + BLOCK - 1})" in warnings[0]
    assert str(cache.path) in warnings[0]
    codec, label_kind = dm.datasets["train"].reader.info.codec, dm.datasets["train"].reader.info.label_kind
    check_packed(cache.get(BAD), codec, label_kind, BAD * BLOCK, (BAD + 1) * BLOCK)  # the entry was replaced
    dm.teardown("fit")


def test_a_new_run_over_a_tampered_cache_trains_on_the_database_rows(db_url: str, table_name: str,
                                                                   tmp_path: Path) -> None:
    """Every backend: a later run (a new data module over the complete cache) finds the bad block and replaces it."""
    dm, _, features, cache = _filled(db_url, table_name, tmp_path, shuffle=True)
    cache.put(BAD, _bad_values(cache)["someone-elses-bytes"])
    dm.teardown("fit")
    again = make_dm(db_url, table_name, tmp_path / "cache", block_size=BLOCK, shuffle=True, seed=6)
    again.prepare_data()
    again.setup("fit")
    assert again.cache_complete["train"]  # a warm first epoch: random access into the cache
    ids = np.concatenate([check_batch(x, y, features) for x, y in again.train_dataloader()])
    assert_exactly_once(ids, N_ROWS)
    assert again.epoch_stats["train"].replaced_blocks == 1
    again.teardown("fit")


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
@pytest.mark.parametrize("shuffle", [True, False], ids=["warm-random-access", "streaming"])
def test_a_bad_block_with_the_database_down_fails_clearly_and_is_never_served(db_url: str, table_name: str,
                                                                              tmp_path: Path, shuffle: bool) -> None:
    forwarder, url = through_forwarder(db_url)
    try:
        dm, loader, features, cache = _filled(url, table_name, tmp_path, shuffle, max_wait=1.0)
        info = dm.datasets["train"].reader.info
        cache.put(BAD, _bad_values(cache)["truncated"])
        forwarder.cut()
        served = []
        with pytest.raises(DatabaseUnavailableError) as raised:
            for x, y in loader:
                served.append(check_batch(x, y, features))
        message = str(raised.value)
        assert f"cached block {BAD} (rows {BAD * BLOCK}..{BAD * BLOCK + BLOCK - 1}) of {table_name!r}" in message
        assert str(cache.path) in message and "It is never served" in message
        assert not any(np.isin(ids, np.arange(BAD * BLOCK, (BAD + 1) * BLOCK)).any() for ids in served)
        with pytest.raises(CorruptBlockError):  # still the bad value: nothing else was put in its place
            check_packed(cache.get(BAD), info.codec, info.label_kind, BAD * BLOCK, (BAD + 1) * BLOCK)
        dm.teardown("fit")
    finally:
        forwarder.cut()
