"""Helpers for the fault tests: server-side connection lookup and kills, a TCP forwarder that can be cut,
subprocess scripts, the dataset values every test checks against, and /proc memory readings."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

import lightning_dm8
from lightning_dm8.datamodule import DM8DataModule

TESTS_DIR = Path(__file__).resolve().parents[1]
FEATURE_DIM = 3


def features_for(n: int, seed: int = 0) -> np.ndarray:
    """Float32 features whose values depend on (seed, row): a served row can be checked against its source."""
    rows = np.arange(n, dtype=np.float32)[:, None]
    return (rows * np.float32(1.5) + np.float32(seed) * np.float32(1000.25) + np.arange(FEATURE_DIM, dtype=np.float32))


def write_labelled(url: str, name: str, n: int, *, seed: int = 0, if_exists: str = "fail",
                   start: int = 0) -> np.ndarray:
    """``n`` rows whose label is the row id (``start``-based, for appends); returns the features written."""
    features = features_for(start + n, seed)[start:]
    lightning_dm8.write_arrays(url, name, features, np.arange(start, start + n), if_exists=if_exists, progress=False)
    return features


def physical_of(url: str, name: str) -> str:
    """The table that holds the current version of dataset ``name`` (its name is a view): where plain SQL that edits
    the rows behind the API's back has to go."""
    return lightning_dm8.DatasetTable(url, name).info(refresh=True).table_name


def make_dm(url: str, table: str, cache_dir: Any = None, **kwargs: Any) -> DM8DataModule:
    options = {"batch_size": 32, "block_size": 64, "num_workers": 0, "progress": False, **kwargs}
    return DM8DataModule(url, train_table=table, cache_dir=None if cache_dir is None else str(cache_dir), **options)


def train_loader(dm: DM8DataModule) -> Any:
    dm.prepare_data()
    dm.setup("fit")
    return dm.train_dataloader()


def check_batch(x: Any, y: Any, expected: np.ndarray) -> np.ndarray:
    """Assert the batch's features equal the source rows named by its labels (= row ids); returns the ids."""
    ids = y.numpy()
    np.testing.assert_array_equal(x.numpy(), expected[ids], err_msg="a served row differs from the source row")
    return ids


def assert_exactly_once(ids: np.ndarray, n: int) -> None:
    counts = np.bincount(ids, minlength=n)
    assert len(counts) == n, f"row ids beyond {n - 1} delivered"
    missing, repeated = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
    assert not len(missing) and not len(repeated), (
        f"{len(missing)} rows missing (first {missing[:10]}), {len(repeated)} repeated (first {repeated[:10]})")


# --- server connections -------------------------------------------------------------------------------------------

def record_connections(db: lightning_dm8.Database) -> set[int]:
    """Server-side ids (PostgreSQL backend pid, MariaDB connection id) of the connections of ``db`` that are checked
    out of its pool in this process, kept up to date: the readers' connections (a reader holds one per thread), never
    an idle pooled one and never another test's."""
    held: set[int] = set()

    def server_id(dbapi_connection: Any) -> int:
        if db.backend.name == "postgresql":
            return int(dbapi_connection.info.backend_pid)
        return int(dbapi_connection.thread_id())

    @sa.event.listens_for(db.engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        record.info["server_id"] = server_id(dbapi_connection)
        held.add(record.info["server_id"])

    @sa.event.listens_for(db.engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        held.discard(record.info.pop("server_id", None))

    @sa.event.listens_for(db.engine, "invalidate")
    def _invalidate(_dbapi_connection: Any, record: Any, _exc: Any) -> None:
        held.discard(record.info.pop("server_id", None))

    return held


def kill_connections(admin_url: str, backend: str, ids: Iterable[int]) -> list[int]:
    """Kill, from an admin connection, those of ``ids`` that are open on the server; returns the ids killed."""
    wanted = sorted(ids)
    if not wanted:
        return []
    engine = sa.create_engine(admin_url, poolclass=sa.pool.NullPool)
    killed: list[int] = []
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                rows = conn.execute(sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND pid = ANY(:pids)"), {"pids": wanted}).all()
                for (pid,) in rows:
                    if conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar():
                        killed.append(int(pid))
            else:
                rows = conn.execute(sa.text(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()")).all()
                open_ids = {int(r[0]) for r in rows}
                for cid in wanted:
                    if cid in open_ids:
                        conn.execute(sa.text(f"KILL {int(cid)}"))
                        killed.append(cid)
            conn.commit()
    finally:
        engine.dispose()
    return killed


def free_port() -> int:
    """A TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Forwarder:
    """A TCP forwarder 127.0.0.1:<port> -> target, whose :meth:`cut` closes the port and every connection through
    it: to the client the server is gone (connections reset, new ones refused)."""

    def __init__(self, target_host: str, target_port: int, *, throttle: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.throttle = throttle  # seconds slept per chunk forwarded: makes a large transfer last a while
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self.frozen = False  # True: connections stay open but nothing is forwarded (a hung server or network)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.05)
                if self._closed:
                    return
                if self.frozen:
                    continue
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if self.throttle:
                        time.sleep(self.throttle)
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        self.listener.close()
        for s in sockets:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def through_forwarder(url: str, **options: Any) -> tuple[Forwarder, str]:
    """A :class:`Forwarder` to the server of ``url``, and the URL that reaches the server through it."""
    target = sa.engine.make_url(url)
    forwarder = Forwarder(target.host, target.port, **options)
    return forwarder, target.set(port=forwarder.port).render_as_string(hide_password=False)


# --- processes ----------------------------------------------------------------------------------------------------

def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start_script(code: str, *args: str, **kwargs: Any) -> subprocess.Popen:
    """Run ``code`` in a fresh Python with the test helpers importable; stdout line-buffered as a pipe."""
    return subprocess.Popen([sys.executable, "-u", "-c", code, *args], env=script_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def fork(target: Callable[..., Any], *args: Any, daemon: bool = True) -> Any:
    """Run ``target(*args)`` in a forked child (it inherits the imports: no start-up cost); returns the Process.
    A child that starts DataLoader workers of its own must not be a daemon."""
    import multiprocessing

    proc = multiprocessing.get_context("fork").Process(target=target, args=args, daemon=daemon)
    proc.start()
    return proc


def kill9(proc: Any) -> None:
    """SIGKILL a forked child and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL


def wait_for(condition: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and not _alive(proc):
            raise AssertionError(f"the child process ended before {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _alive(proc: Any) -> bool:
    return proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_alive()


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def children(pid: int | None = None) -> list[int]:
    """Live child processes of ``pid`` (this process by default)."""
    pid = os.getpid() if pid is None else pid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon and RssFile of ``pid`` in kB (empty if it is gone)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values
