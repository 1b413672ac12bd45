"""A process killed with SIGKILL in the middle of a save: earlier checkpoints stay loadable, nothing partial shows."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import sqlalchemy as sa
import torch

from lightning_dm8.checkpoint import DM8CheckpointIO, list_checkpoints, load_checkpoint
from lightning_dm8.checkpoint.records import CheckpointMeta
from lightning_dm8.checkpoint.store import CheckpointStore

CHUNK = 64 << 10


def _save_slowly(url: str, table: str) -> None:
    """The child: the real save path, one chunk per transaction, so chunk rows land long before the end."""
    store = CheckpointStore(url, table, chunk_size=CHUNK, commit_bytes=CHUNK)
    store.save("victim", os.urandom(1024 * CHUNK), CheckpointMeta(name="big", kind="periodic"))
    os._exit(0)


def _chunk_rows(store: CheckpointStore, version: int) -> int:
    chunks = store.tables.chunks
    with store.db.connect() as conn:
        query = sa.select(sa.func.count()).where(chunks.c.run == "victim", chunks.c.version == version)
        return int(conn.execute(query).scalar_one())


def test_sigkill_during_a_save_leaves_the_previous_checkpoint_and_no_partial_one(db_url: str, models: str) -> None:
    io_ = DM8CheckpointIO(db_url, table=models)
    weights = {"w": torch.randn(64, 64)}
    io_.save_checkpoint({"state_dict": weights, "epoch": 0}, "dm8:victim:before")
    store = io_.store()
    io_.teardown()  # no pooled connection is inherited by the child

    child = multiprocessing.get_context("fork").Process(target=_save_slowly, args=(db_url, models))
    child.start()
    deadline = time.monotonic() + 60
    landed = 0
    while landed < 3 and time.monotonic() < deadline and child.is_alive():
        landed = _chunk_rows(store, 2)
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
    assert landed >= 3, "the child finished or never wrote before it could be killed"

    # readers see only the earlier checkpoint; the killed save is an unfinished header with some of its chunks
    assert [(c.version, c.name) for c in list_checkpoints(db_url, "victim", table=models)] == [(1, "before")]
    loaded = load_checkpoint(db_url, "victim", "latest", table=models)
    assert torch.equal(loaded["state_dict"]["w"], weights["w"])
    everything = list_checkpoints(db_url, "victim", table=models, include_incomplete=True)
    unfinished = [c for c in everything if not c.complete]
    assert [c.version for c in unfinished] == [2]
    assert 0 < _chunk_rows(store, 2) < unfinished[0].chunk_count

    # the run's next save removes the leftovers and takes the next version
    io_.save_checkpoint({"state_dict": weights, "epoch": 1}, "dm8:victim:after")
    everything = list_checkpoints(db_url, "victim", table=models, include_incomplete=True)
    assert [(c.version, c.name, c.complete) for c in everything] == [(1, "before", True), (2, "after", True)]
    assert _chunk_rows(store, 2) == 1
    assert load_checkpoint(db_url, "victim", "after", table=models)["epoch"] == 1
