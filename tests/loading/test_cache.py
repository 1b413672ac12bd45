"""The LMDB block cache: one environment per path and process shared by every cache object, staleness by
fingerprint, fork safety (workers never disturb the main process's handle), and no deadlock between a writing
prefetch thread and a second opener."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from lightning_dm8.db.engine import Database
from lightning_dm8.loading import cache as cache_module
from lightning_dm8.loading.cache import BlockCache, cache_path
from loading.support import make_dm, write_labelled


def test_two_caches_on_one_path_share_the_environment(tmp_path: Path) -> None:
    first = BlockCache(tmp_path / "c", "fp", 8, 4)
    second = BlockCache(tmp_path / "c", "fp", 8, 4)
    assert first.put(0, b"zero") and second.put(1, b"one")
    assert (first.get(1), second.get(0)) == (b"one", b"zero")
    first.close()
    assert second.get(1) == b"one" and second.cached_blocks() == 2
    second.close()
    third = BlockCache(tmp_path / "c", "fp", 8, 4)
    assert third.get(0) == b"zero" and not third.is_complete()
    third.close()


def test_another_fingerprint_or_block_size_empties_the_cache(tmp_path: Path) -> None:
    old = BlockCache(tmp_path / "c", "old", 8, 1)
    old.put(0, b"stale")
    assert old.is_complete()
    old.close()
    for fingerprint, block_size in (("new", 8), ("new", 16)):
        cache = BlockCache(tmp_path / "c", fingerprint, block_size, 1)
        assert cache.get(0) is None
        cache.put(0, b"fresh")
        cache.close()


def test_a_cache_of_an_earlier_byte_format_is_emptied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "FORMAT", "LDB2")  # blocks checksummed with CRC-32
    old = BlockCache(tmp_path / "c", "fp", 8, 1)
    old.put(0, b"crc-32 block")
    old.close()
    monkeypatch.undo()
    cache = BlockCache(tmp_path / "c", "fp", 8, 1)
    assert cache.get(0) is None and cache.cached_blocks() == 0
    cache.close()


@pytest.mark.timeout(60, method="thread")  # a deadlock holds the GIL: only a thread can end it
def test_opening_while_a_thread_writes_does_not_deadlock(tmp_path: Path) -> None:
    writer = BlockCache(tmp_path / "c", "fp", 8, 400)
    done = threading.Event()

    def fill() -> None:
        for block in range(400):
            writer.put(block, b"x" * 4096)
        done.set()

    thread = threading.Thread(target=fill)
    thread.start()
    opened = 0
    while not done.is_set():
        reader = BlockCache(tmp_path / "c", "fp", 8, 400)
        reader.cached_blocks()
        reader.close()
        opened += 1
    thread.join()
    assert opened > 0 and writer.is_complete()
    writer.close()


def _child_reads_and_writes(cache: BlockCache, queue: multiprocessing.Queue) -> None:
    queue.put((cache.get(0), cache.put(1, b"from child")))


def test_a_forked_child_opens_its_own_handle(tmp_path: Path) -> None:
    cache = BlockCache(tmp_path / "c", "fp", 8, 2)
    cache.put(0, b"parent")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_reads_and_writes, args=(cache, queue))
    child.start()
    assert queue.get(timeout=30) == (b"parent", True)
    child.join(30)
    assert child.exitcode == 0
    assert cache.get(1) == b"from child" and cache.is_complete()
    cache.close()


def test_cache_path_names_the_table_and_never_the_password(tmp_path: Path) -> None:
    db = Database("postgresql+psycopg://alice:s3cret@db.example:5432/train")
    path = cache_path(tmp_path, db, "images/v2")
    assert path.parent == tmp_path and path.name.startswith("images_v2-")
    assert "s3cret" not in str(path)
    assert cache_path(tmp_path, Database("postgresql+psycopg://alice:other@db.example:5432/train"), "images/v2") == path
    assert cache_path(tmp_path, db, "images/v3") != path


def test_a_loader_with_workers_holds_no_cache_handle_while_they_run(tmp_path: Path) -> None:
    """A worker forgets the LMDB environment it inherited by closing it, which releases the reader slot of the thread
    that forked (py-lmdb refuses a second open otherwise). So the loader closes its own handle before starting
    workers: the main process has nothing open for them to inherit."""
    url = f"sqlite:///{tmp_path / 'data.db'}"
    write_labelled(url, "data", 600)
    dm = make_dm(url, "data", tmp_path / "cache", block_size=64, num_workers=2)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    cache = dm.datasets["train"].cache
    for _ in range(2):  # cold, then warm (the main process opened the cache to see that it is complete)
        for number, _ in enumerate(loader):
            if number == 0:
                registry = cache_module._ENVIRONMENTS.peek()
                assert registry is None or str(cache.path) not in registry._open, "open in the main process"
    assert dm.epoch_stats["train"].rows_from_cache == 600  # the warm epoch read only the cache
    dm.teardown("fit")
