"""A 200 MB checkpoint through the model table on every backend (MariaDB: chunks under max_allowed_packet)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
import torch

from lightning_dm8.checkpoint import DM8CheckpointIO, list_checkpoints

MB = 1_000_000


@pytest.mark.slow
def test_a_200_mb_checkpoint_round_trips(backend: str, db_url: str, models: str, tmp_path) -> None:
    weights = torch.randn(200 * MB // 4, generator=torch.Generator().manual_seed(1))
    checkpoint = {"state_dict": {"big": weights}, "epoch": 7}

    started = time.perf_counter()
    torch.save(checkpoint, tmp_path / "local.ckpt")
    file_save = time.perf_counter() - started
    started = time.perf_counter()
    torch.load(tmp_path / "local.ckpt")
    file_load = time.perf_counter() - started

    io_ = DM8CheckpointIO(db_url, table=models)
    started = time.perf_counter()
    io_.save_checkpoint(checkpoint, "dm8:big:weights")
    db_save = time.perf_counter() - started
    started = time.perf_counter()
    loaded = io_.load_checkpoint("dm8:big:weights")
    db_load = time.perf_counter() - started

    assert torch.equal(loaded["state_dict"]["big"], weights) and loaded["epoch"] == 7
    (info,) = list_checkpoints(db_url, "big", table=models)
    assert info.size_bytes > 200 * MB
    store = io_.store()
    with store.db.connect() as conn:
        largest = conn.execute(sa.select(sa.func.max(sa.func.length(store.tables.chunks.c.data)))).scalar_one()
    assert info.chunk_count == -(-info.size_bytes // largest) > 1
    if backend == "mysql":
        with store.db.connect() as conn:
            packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one()
        assert 2 * largest < packet
    print(
        f"\n200 MB checkpoint on {backend}: save {db_save:.2f} s, load {db_load:.2f} s "
        f"({info.chunk_count} chunks of {largest / 2**20:.1f} MiB); torch.save/load to a local file: "
        f"{file_save:.2f} s / {file_load:.2f} s"
    )
    io_.teardown()
