"""The background cache writer: blocks submitted are committed whole, visible once flushed, failures surface in the
reading thread, a forked child writes through its own thread, ``put_many`` is all or nothing, and a block other
workers need is committed at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import lmdb
import pytest

from lightning_dm8.db.engine import Database
from lightning_dm8.loading.cache import BlockCache, CacheFullError
from lightning_dm8.loading.cache_writer import CacheWriter
from lightning_dm8.loading.source import BlockSource
from lightning_dm8.tables.dataset_table import DatasetTable
from lightning_dm8.tables.reader import TableReader
from loading.support import write_labelled


def test_flushed_blocks_are_in_the_cache(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 40)
    writer = CacheWriter(cache)
    for block in range(40):
        writer.submit(block, bytes([block]) * 1000)
    writer.flush()
    other = BlockCache(tmp_path / "c", "fp", 8, 40)
    assert other.is_complete() and other.get(7) == bytes([7]) * 1000
    writer.close()
    other.close()
    cache.close()


def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 3)
    writer = CacheWriter(cache)
    for block in range(3):
        writer.submit(block, b"x" * 10)
    writer.close()
    assert cache.is_complete()
    cache.close()


def test_a_full_cache_fails_the_next_flush_with_the_cache_message(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 10, map_size=1 << 20)
    writer = CacheWriter(cache)
    writer.submit(0, b"y" * (4 << 20))
    with pytest.raises(CacheFullError, match="is full.*cache_on_full='skip'"):
        writer.flush()
    assert cache.get(0) is None
    writer.close()
    cache.close()


def test_a_full_cache_with_skip_stops_caching_quietly(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 10, map_size=1 << 20, on_full="skip")
    writer = CacheWriter(cache)
    writer.submit(0, b"y" * (4 << 20))
    writer.submit(1, b"small")
    writer.flush()
    assert cache.disabled_reason is not None and "is full" in cache.disabled_reason
    assert cache.get(0) is None and cache.get(1) is None
    writer.close()
    cache.close()


def test_put_many_writes_all_blocks_or_none(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 10, map_size=1 << 20)
    assert cache.put_many([(0, b"a"), (1, b"b")])
    with pytest.raises(CacheFullError):
        cache.put_many([(2, b"c"), (3, b"d" * (4 << 20))])
    assert cache.get(2) is None and cache.cached_blocks() == 2
    cache.close()


def _child_submits(writer: CacheWriter, queue: multiprocessing.Queue) -> None:
    writer.submit(1, b"from child")
    writer.flush()
    queue.put("done")


def test_a_forked_child_writes_through_its_own_thread(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 2)
    writer = CacheWriter(cache)
    writer.submit(0, b"from parent")
    writer.flush()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_submits, args=(writer, queue))
    child.start()
    assert queue.get(timeout=30) == "done"
    child.join(30)
    assert child.exitcode == 0
    assert cache.get(1) == b"from child" and cache.is_complete()
    writer.close()
    cache.close()


def test_a_writer_error_that_is_not_a_full_disk_is_raised_as_is(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 2)
    writer = CacheWriter(cache)

    def refuse(items: object) -> bool:
        raise lmdb.BadValsizeError("bad value")

    cache.put_many = refuse  # type: ignore[method-assign]
    writer.submit(1, b"z")
    with pytest.raises(lmdb.BadValsizeError, match="bad value"):
        writer.flush()
    writer.close()
    cache.close()


def test_a_block_other_workers_need_is_committed_before_load_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    write_labelled(url, "rows", 100)
    db = Database(url)
    info = DatasetTable(db, "rows").info()
    cache = BlockCache(tmp_path / "c", info.fingerprint, 10, 10)
    source = BlockSource(TableReader(db, info), 10, cache)
    source.load(3, shared=True)
    assert cache.get(3) is not None  # no flush needed: another worker may look for it right now
    source.load(4)
    source.flush()
    assert cache.get(4) is not None and source.stats.rows_from_db == 20
    source.close()
    cache.close()
    db.dispose()
