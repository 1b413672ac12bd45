"""Commits that do not wait for the disk, and markers so that an OS crash never leaves a corrupt cache served.

* The environment is opened without per-commit sync; a process's first write creates a durable marker
  ``unsynced-<boot>-<pid>-<tag>`` (0600) that it removes after syncing, when its writer stops, when it closes the
  cache, or when it exits.
* A marker of another boot whose writer is gone: the cache is removed before LMDB opens it (even a file LMDB would
  refuse), with a warning, and filled again. One of this boot (a killed writer): the blocks are kept, synced, the
  marker removed. One whose writer is alive: left alone.
* A commit is visible to other processes before any sync.
* Where the boot id cannot be read, every commit syncs and no marker is made.

Real LMDB files and real processes throughout.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import stat
from pathlib import Path
from typing import Any

import pytest

from lightning_dm8.loading import cache as cache_module
from lightning_dm8.loading.cache import BlockCache, cache_path
from lightning_dm8.loading.cache_writer import CacheWriter
from loading.support import make_dm, write_labelled

FORK = multiprocessing.get_context("fork")
OTHER_BOOT = "00000000-1111-2222-3333-444444444444"


def markers(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("unsynced-*"))


def fake_marker(path: Path, boot: str, pid: int = 999_999_999) -> Path:
    """A marker no process holds, as a writer that died (killed, or with its machine) would leave it."""
    marker = path / f"unsynced-{boot}-{pid}-0badcafe"
    marker.write_text(f"boot {boot} pid {pid}\n")
    return marker


def block(number: int) -> bytes:
    return bytes([number % 256]) * (10_000 + number)


def filled(path: Path, n: int) -> None:
    cache = BlockCache(path, "fp", 8, n)
    assert cache.put_many([(b, block(b)) for b in range(n)])
    cache.close()


def test_a_write_makes_a_private_marker_that_the_writer_removes_once_synced(tmp_path: Path) -> None:
    path = tmp_path / "c"
    cache = BlockCache(path, "fp", 8, 40)
    writer = CacheWriter(cache)
    writer.submit(0, block(0))
    writer.flush()
    (marker,) = path.glob("unsynced-*")
    assert re.fullmatch(rf"unsynced-{cache_module._boot_id()}-{os.getpid()}-[0-9a-f]{{8}}", marker.name)
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert cache._handle.get()[0].env.flags()["sync"] is False
    for number in range(1, 40):
        writer.submit(number, block(number))
    writer.flush()
    assert markers(path) == [marker.name]  # one marker for all of this process's writes
    writer.close()  # done writing: synced, marker removed, the cache still open
    assert markers(path) == [] and cache.get(39) == block(39)
    assert cache.put(40, b"later")  # a later write marks again, and the cache's close syncs it
    assert len(markers(path)) == 1
    cache.close()
    assert markers(path) == []


def test_opening_an_unchanged_cache_writes_nothing_and_makes_no_marker(tmp_path: Path) -> None:
    filled(tmp_path / "c", 3)
    cache = BlockCache(tmp_path / "c", "fp", 8, 3)
    assert cache.is_complete() and markers(tmp_path / "c") == []
    cache.close()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_no_marker_remains_after_an_epoch_fills_the_cache(tmp_path: Path, num_workers: int) -> None:
    """DataLoader workers end without ``atexit``: they sync at exit through a multiprocessing finalizer."""
    url = f"sqlite:///{tmp_path / 'data.db'}"
    write_labelled(url, "data", 600)
    dm = make_dm(url, "data", tmp_path / "cache", block_size=64, num_workers=num_workers)
    dm.prepare_data()
    dm.setup("fit")
    assert sum(len(y) for _, y in dm.train_dataloader()) == 600
    dm.teardown("fit")
    path = cache_path(tmp_path / "cache", dm.db, "data")
    assert markers(path) == []
    dm.setup("fit")
    assert dm.datasets["train"].cache_is_complete()
    dm.teardown("fit")


def _write_and_exit(path: Path) -> None:
    assert BlockCache(path, "fp", 8, 2).put(0, b"from a child that never closes")


def test_a_process_that_exits_without_closing_syncs_at_exit(tmp_path: Path) -> None:
    child = FORK.Process(target=_write_and_exit, args=(tmp_path / "c",))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and markers(tmp_path / "c") == []


def _read_block(path: Path, queue: Any) -> None:
    cache = BlockCache(path, "fp", 8, 2)
    queue.put(cache.get(1))
    cache.close()


def test_another_process_sees_a_commit_before_any_sync(tmp_path: Path) -> None:
    path = tmp_path / "c"
    cache = BlockCache(path, "fp", 8, 2)
    assert cache.put(1, b"committed, not synced")
    assert len(markers(path)) == 1  # not synced yet
    queue = FORK.Queue()
    child = FORK.Process(target=_read_block, args=(path, queue))
    child.start()
    assert queue.get(timeout=30) == b"committed, not synced"
    child.join(30)
    assert child.exitcode == 0 and len(markers(path)) == 1  # the reader synced nothing of ours
    cache.close()


def test_a_marker_of_another_boot_discards_the_cache_before_lmdb_opens_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c"
    filled(path, 3)
    (path / "data.mdb").write_bytes(b"torn pages " * 1000)  # what a crash may leave: LMDB must not read it
    marker = fake_marker(path, OTHER_BOOT, pid=4242)
    with caplog.at_level(logging.WARNING, logger=cache_module.__name__):
        cache = BlockCache(path, "fp", 8, 3)
        assert cache.cached_blocks() == 0
    assert not marker.exists()
    assert (f"the block cache at {path} was being written when the machine stopped (a system crash or reboot: "
            f"writer pid 4242 of boot {OTHER_BOOT}) before its writes reached the disk; it may be corrupt, so it is "
            f"removed and filled again from the database") in caplog.text
    assert cache.put_many([(b, block(b)) for b in range(3)]) and cache.is_complete()  # filled again
    cache.close()
    assert markers(path) == []
    assert BlockCache(path, "fp", 8, 3).get(2) == block(2)


def test_a_marker_of_this_boot_whose_writer_is_gone_keeps_the_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c"
    filled(path, 3)
    marker = fake_marker(path, cache_module._boot_id() or "unreadable")
    with caplog.at_level(logging.WARNING, logger=cache_module.__name__):
        cache = BlockCache(path, "fp", 8, 3)
        assert [cache.get(b) for b in range(3)] == [block(b) for b in range(3)]
    assert not marker.exists() and "may be corrupt" not in caplog.text
    cache.close()


def _fill_until_killed(path: Path, flushed: Any) -> None:
    cache = BlockCache(path, "fp", 8, 10_000)
    writer = CacheWriter(cache)
    for number in range(10_000):
        writer.submit(number, block(number))
        if number % 10 == 9:
            writer.flush()
            flushed.value = number + 1


def test_a_writer_killed_mid_fill_leaves_whole_blocks_that_the_next_open_keeps(tmp_path: Path) -> None:
    path = tmp_path / "c"
    flushed = FORK.Value("i", 0)
    child = FORK.Process(target=_fill_until_killed, args=(path, flushed))
    child.start()
    while flushed.value < 200 and child.is_alive():
        child.join(0.01)
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]  # started: it has a pid
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    at_kill = flushed.value
    assert markers(path) and str(child.pid) in markers(path)[0]  # its writes were never synced
    cache = BlockCache(path, "fp", 8, 10_000)
    cached = cache.cached_blocks()
    assert cached >= at_kill
    with cache.reader() as txn:
        stored = {number: bytes(txn.get(BlockCache.key(number)) or b"") for number in range(cached + 50)}
    assert all(stored[number] == block(number) for number in range(cached))  # whole blocks, every one right
    assert not any(stored[number] for number in range(cached, cached + 50))
    assert markers(path) == []  # synced once by this opener, marker removed
    cache.close()


def _hold_a_marker(path: Path, boot: str, ready: Any, done: Any) -> None:
    cache_module._boot_id = lambda: boot  # type: ignore[assignment]  # a writer of another boot id, still alive
    cache = BlockCache(path, "fp", 8, 2)
    assert cache.put(1, b"live writer")
    ready.set()
    done.wait(30)
    cache.close()


@pytest.mark.parametrize("boot", ["this", "other"])
def test_the_marker_of_a_live_writer_is_left_alone(tmp_path: Path, boot: str) -> None:
    """Liveness is the marker's lock, not its pid or boot: a live writer is never discarded or synced away."""
    path = tmp_path / "c"
    filled(path, 1)
    ready, done = FORK.Event(), FORK.Event()
    child_boot = cache_module._boot_id() if boot == "this" else OTHER_BOOT
    child = FORK.Process(target=_hold_a_marker, args=(path, child_boot, ready, done))
    child.start()
    assert ready.wait(30)
    (marker,) = markers(path)
    cache = BlockCache(path, "fp", 8, 2)
    assert cache.get(0) == block(0) and cache.get(1) == b"live writer"
    assert markers(path) == [marker]
    done.set()
    child.join(30)
    assert child.exitcode == 0 and markers(path) == []
    cache.close()


def test_without_a_boot_id_every_commit_syncs_and_no_marker_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "_BOOT_ID", tmp_path / "no-such-file")
    cache = BlockCache(tmp_path / "c", "fp", 8, 2)
    assert cache.put(0, b"synced") and markers(tmp_path / "c") == []
    assert cache._handle.get()[0].env.flags()["sync"] is True
    cache.close()


def test_without_a_boot_id_a_marker_nobody_holds_cannot_be_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No boot id: a reboot cannot be told from a killed writer, so the cache is filled again."""
    path = tmp_path / "c"
    filled(path, 2)
    fake_marker(path, cache_module._boot_id() or OTHER_BOOT)
    monkeypatch.setattr(cache_module, "_BOOT_ID", tmp_path / "no-such-file")
    with caplog.at_level(logging.WARNING, logger=cache_module.__name__):
        cache = BlockCache(path, "fp", 8, 2)
        assert cache.cached_blocks() == 0 and markers(path) == []
    assert "may be corrupt" in caplog.text
    cache.close()
