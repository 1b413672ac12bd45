"""Fault 1: the database connection is lost mid-epoch.

A reader's connection killed on the server (PostgreSQL ``pg_terminate_backend``, MariaDB ``KILL``) is reopened and
the block re-read: the epoch still delivers every row exactly once. A server that stays gone ends the epoch with
a :class:`DatabaseUnavailableError` once ``max_wait`` has passed — never a hang.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ldm8_backends import server_url

from lightning_dm8 import Database, DatabaseUnavailableError
from reliability.support import (
    assert_exactly_once,
    check_batch,
    kill_connections,
    make_dm,
    record_connections,
    through_forwarder,
    train_loader,
    write_labelled,
)

N_ROWS = 3000
SERVERS = ["postgresql", "mysql"]


def loader_through_forwarder(backend: str, table: str, tmp_path, **options):
    """A 2000-row table and an unshuffled train loader that reaches the server through a :class:`Forwarder`."""
    url = server_url(backend, tmp_path)
    write_labelled(url, table, 2000)
    forwarder, proxied = through_forwarder(url)
    dm = make_dm(proxied, table, None, batch_size=50, block_size=100, shuffle=False, **options)
    return forwarder, dm, train_loader(dm)


@pytest.mark.parametrize("backend", SERVERS)
def test_killed_reader_connection_is_reopened_and_the_epoch_is_exact(backend, table_name, tmp_path) -> None:
    url = server_url(backend, tmp_path)
    features = write_labelled(url, table_name, N_ROWS)
    dm = make_dm(url, table_name, None, batch_size=50, block_size=100, prefetch_blocks=3, io_threads=2,
                 shuffle=True, seed=3, max_wait=30.0)
    held = record_connections(dm.db)
    loader = train_loader(dm)
    reader = dm.datasets["train"].reader

    ids, killed, kill_times = [], [], []
    for i, (x, y) in enumerate(loader):
        ids.append(check_batch(x, y, features))
        if i in (5, 25):  # kill twice, from the consuming loop, while prefetch threads keep reading
            killed += kill_connections(url, backend, held)
            kill_times.append(time.monotonic())
    delivered = np.concatenate(ids)

    assert killed, "no reader connection was found on the server to kill"
    assert_exactly_once(delivered, N_ROWS)
    assert reader.reconnects >= 1, "the killed connections were never noticed: the test did not exercise a reconnect"
    stats = dm.epoch_stats["train"]
    assert stats.rows_from_db == N_ROWS and stats.queries == N_ROWS // 100
    print(f"\n{backend}: killed connections {killed}; reader reconnects={reader.reconnects}, "
          f"time spent reconnecting={reader.reconnect_seconds:.3f} s; rows delivered={len(delivered)}, "
          f"duplicates={len(delivered) - len(np.unique(delivered))}")
    dm.teardown("fit")


@pytest.mark.parametrize("backend", SERVERS)
def test_server_that_stays_down_fails_clearly_within_max_wait(backend, table_name, tmp_path) -> None:
    max_wait = 2.0
    forwarder, dm, loader = loader_through_forwarder(backend, table_name, tmp_path, max_wait=max_wait)

    delivered = 0
    with pytest.raises(DatabaseUnavailableError) as raised:
        for x, _ in loader:
            delivered += len(x)
            if delivered == 50:  # after the first block: the server vanishes for good
                forwarder.cut()
                cut_at = time.monotonic()
    elapsed = time.monotonic() - cut_at
    message = str(raised.value)
    print(f"\n{backend}: {delivered} rows delivered before the error, raised {elapsed:.2f} s after the cut: {message}")
    assert delivered < 2000
    assert elapsed < max_wait + 4.0, f"the reader kept waiting {elapsed:.1f} s with max_wait={max_wait}"
    assert "max_wait" in message and table_name in message
    dm.teardown("fit")


@pytest.mark.parametrize("backend", SERVERS)
def test_server_that_stops_answering_fails_within_max_wait(backend, table_name, tmp_path) -> None:
    """A hung server (or a network that drops packets): connections stay open but no answer ever comes. The
    read in flight is cut off at max_wait instead of blocking forever."""
    max_wait = 2.0
    # One I/O thread: its connection is open before the hang, so what is measured is the read in flight (a new
    # connection to a hung server is bounded by connect_timeout instead: see the next test).
    forwarder, dm, loader = loader_through_forwarder(backend, table_name, tmp_path, max_wait=max_wait,
                                                     prefetch_blocks=1, io_threads=1)

    delivered = 0
    with pytest.raises(DatabaseUnavailableError, match="no answer") as raised:
        for x, _ in loader:
            delivered += len(x)
            if delivered == 100:
                forwarder.frozen = True
                frozen_at = time.monotonic()
    elapsed = time.monotonic() - frozen_at
    print(f"\n{backend}: {delivered} rows delivered, raised {elapsed:.2f} s after the server stopped answering: "
          f"{raised.value}")
    assert elapsed < max_wait + 4.0, f"the read stayed blocked {elapsed:.1f} s with max_wait={max_wait}"
    assert delivered < 2000
    forwarder.cut()
    dm.teardown("fit")


@pytest.mark.parametrize("backend", SERVERS)
def test_connecting_to_a_server_that_never_answers_is_bounded_by_connect_timeout(backend, tmp_path) -> None:
    """The TCP connection is accepted but the server never sends its greeting (a paused or hung server)."""
    forwarder, proxied = through_forwarder(server_url(backend, tmp_path))
    forwarder.frozen = True
    db = Database(proxied, connect_timeout=2)
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError):
        db.ping()
    elapsed = time.monotonic() - start
    print(f"\n{backend}: connecting to a silent server failed after {elapsed:.2f} s (connect_timeout=2)")
    assert elapsed < 2 + 3.0
    forwarder.cut()
    db.dispose()


@pytest.mark.parametrize("backend", SERVERS)
def test_a_pooled_connection_to_a_server_that_stopped_answering_is_bounded(backend, tmp_path) -> None:
    """The pool pings an idle connection before handing it out: on a paused server that ping is cut off at the
    connect timeout (and the reconnect too), instead of waiting forever before any reader's watchdog runs."""
    forwarder, proxied = through_forwarder(server_url(backend, tmp_path))
    db = Database(proxied, connect_timeout=2)
    db.ping()  # a pooled connection, idle now
    forwarder.frozen = True
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError):
        db.ping()
    elapsed = time.monotonic() - start
    print(f"\n{backend}: the pooled connection's ping to a paused server failed after {elapsed:.2f} s")
    assert elapsed < 2 * 2 + 3.0
    forwarder.cut()
    db.dispose()
