"""Checkpoints in the database when the server goes away in the middle of a save.

The connection is cut (every socket of a TCP forwarder closed, new connections refused) while
``DM8CheckpointIO.save_checkpoint`` is writing chunks: the save fails at once with a
:class:`DatabaseUnavailableError`, the earlier checkpoint stays the latest and loads bit for bit, nothing partial
is listed, and the next save (server back) succeeds and takes over the unfinished version.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch
from ldm8_backends import server_url

from lightning_dm8 import DatabaseUnavailableError
from lightning_dm8.checkpoint import DM8CheckpointIO, list_checkpoints, load_checkpoint
from reliability.support import through_forwarder, wait_for


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_server_lost_during_a_checkpoint_save(backend, table_name, tmp_path) -> None:
    url = server_url(backend, tmp_path)
    models = f"{table_name}_models"
    before = {"w": torch.randn(64, 64)}
    direct = DM8CheckpointIO(url, table=models, chunk_size=256 << 10)
    direct.save_checkpoint({"state_dict": before, "epoch": 0}, "dm8:run:before")

    forwarder, proxied_url = through_forwarder(url, throttle=0.002)
    proxied = DM8CheckpointIO(proxied_url, table=models, chunk_size=256 << 10)
    big = {"w": torch.randn(4 << 20)}  # 16 MB: 64 chunks, a second or more through the throttled forwarder
    outcome: dict[str, object] = {}

    def save() -> None:
        try:
            proxied.save_checkpoint({"state_dict": big, "epoch": 1}, "dm8:run:big")
            outcome["saved"] = True
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    saver = threading.Thread(target=save, daemon=True)
    saver.start()
    wait_for(lambda: any(not c.complete for c in list_checkpoints(url, "run", table=models, include_incomplete=True))
             or outcome, 60, "the save to start writing chunks")
    assert not outcome, f"the save ended before the connection could be cut: {outcome}"
    forwarder.cut()
    cut_at = time.monotonic()
    saver.join(30)
    assert not saver.is_alive(), "the save hung after the server went away"
    error = outcome.get("error")
    print(f"\n{backend}: save failed {outcome['at'] - cut_at:.2f} s after the cut with {type(error).__name__}: {error}")
    assert isinstance(error, DatabaseUnavailableError), f"expected DatabaseUnavailableError, got {error!r}"
    assert float(outcome["at"]) - cut_at < 10

    complete = [(c.version, c.name) for c in list_checkpoints(url, "run", table=models)]
    assert complete == [(1, "before")], "a partial checkpoint is listed"
    assert torch.equal(load_checkpoint(url, "run", "latest", table=models)["state_dict"]["w"], before["w"])

    direct.save_checkpoint({"state_dict": big, "epoch": 1}, "dm8:run:after")
    everything = list_checkpoints(url, "run", table=models, include_incomplete=True)
    assert [(c.version, c.name, c.complete) for c in everything] == [(1, "before", True), (2, "after", True)]
    assert torch.equal(load_checkpoint(url, "run", "after", table=models)["state_dict"]["w"], big["w"])
    direct.teardown()
    proxied.teardown()
