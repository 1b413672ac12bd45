"""Training from the cache while the database server is down: a throwaway PostgreSQL instance on its own port is
stopped after the first epoch has filled the cache; the run, and a new run over the same cache, still complete.

The shared server on 5432 is never touched.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lightning_dm8 import DatabaseUnavailableError
from loading.support import (
    RecordingModule,
    assert_exactly_once,
    epoch_batches,
    make_dm,
    quiet_trainer,
    write_labelled,
)

pytestmark = pytest.mark.slow

N_ROWS = 777
BLOCK_SIZE = 64


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*command: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=120)


class ThrowawayServer:
    """A private PostgreSQL cluster in a temporary directory, run as the ``postgres`` OS user."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="ldm8-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        shutil.chown(self.root, "postgres", "postgres")
        _as_postgres(str(bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                     str(self.root / "log"), "-w", "-t", "60", "start")
        self.running = True

    def stop(self) -> None:
        if self.running:
            _as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[ThrowawayServer]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/*/bin) are not installed")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("starting a throwaway PostgreSQL needs root (to run initdb as the postgres user via runuser)")
    instance = ThrowawayServer(bin_dir)
    instance.start()
    try:
        yield instance
    finally:
        instance.remove()


def run_epoch(loader, features: np.ndarray) -> np.ndarray:
    batches = epoch_batches(loader)
    ids = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), features[ids])
    assert_exactly_once(ids, N_ROWS)
    return ids


@pytest.mark.parametrize("num_workers", [0, 2])
def test_training_continues_from_the_cache_when_the_server_stops(server, tmp_path: Path, num_workers: int) -> None:
    features = write_labelled(server.url, "offline_rows", N_ROWS)
    options = {"cache_dir": tmp_path / "cache", "num_workers": num_workers, "shuffle": True, "max_wait": 1.0,
               "block_size": BLOCK_SIZE}
    dm = make_dm(server.url, "offline_rows", **options)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    first = run_epoch(loader, features)
    # Every row from the database; a block at the edge of two workers' shares may be read by both when they need
    # it at the same moment (at most one block per edge).
    assert N_ROWS <= dm.epoch_stats["train"].rows_from_db <= N_ROWS + max(0, num_workers - 1) * BLOCK_SIZE

    server.stop()
    started = time.perf_counter()
    second = run_epoch(loader, features)
    assert dm.epoch_stats["train"].queries == 0 and not np.array_equal(first, second)
    dm.teardown("fit")

    # A new run over the same cache: the table's description comes from the cache, the rows too.
    again = make_dm(server.url, "offline_rows", **options)
    model = RecordingModule()
    with pytest.warns(UserWarning, match="offline_rows.*cache"):
        quiet_trainer(max_epochs=1).fit(model, datamodule=again)
    assert_exactly_once(np.concatenate(model.seen), N_ROWS)
    assert again.epoch_stats["train"].queries == 0
    assert time.perf_counter() - started < 30

    uncached = make_dm(server.url, "offline_rows", cache_dir=tmp_path / "elsewhere", max_wait=1.0)
    with pytest.raises(DatabaseUnavailableError):
        uncached.prepare_data()
