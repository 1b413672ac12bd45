"""The model table itself: chunked writes, verified reads, versions, errors that name run and version."""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
import torch

from lightning_dm8.checkpoint import (
    CheckpointCorruptError,
    CheckpointNotFoundError,
    DM8CheckpointIO,
    InvalidCheckpointPathError,
    list_checkpoints,
    load_checkpoint,
)
from lightning_dm8.checkpoint.chunks import ChunkIO
from lightning_dm8.checkpoint.payload import payload_file
from lightning_dm8.checkpoint.records import CheckpointInfo, CheckpointMeta
from lightning_dm8.checkpoint.store import CheckpointStore
from lightning_dm8.db import blobs as blobs_module
from lightning_dm8.db.backends.mysql import chunk_limit as mysql_chunk_limit
from lightning_dm8.db.blobs import ChunkOpener
from lightning_dm8.db.engine import Database


def _meta(name: str, value: float | None = None) -> CheckpointMeta:
    monitor = "val_loss" if value is not None else None
    return CheckpointMeta(name=name, kind="periodic", epoch=1, global_step=10, monitor=monitor,
                          monitor_value=value, monitor_mode="min" if monitor else None)


def test_payload_is_split_into_chunks_and_read_back_exactly(db_url: str, models: str) -> None:
    store = CheckpointStore(db_url, models, chunk_size=1000)
    payload = os.urandom(4500) + bytes(2000)  # zeros: the worst case for MySQL's escaping
    info = store.save("r", payload, _meta("a"))
    assert (info.version, info.chunk_count, info.size_bytes) == (1, 7, 6500)
    with store.db.connect() as conn:
        sizes = conn.execute(
            sa.select(sa.func.length(store.tables.chunks.c.data)).order_by(store.tables.chunks.c.chunk_no)
        ).scalars().all()
    assert sizes == [1000] * 6 + [500]
    assert store.read(store.resolve("r", 1)) == payload


def test_versions_count_up_and_selectors_pick_the_right_one(db_url: str, models: str) -> None:
    store = CheckpointStore(db_url, models)
    for name, value in (("e0", 0.9), ("e1", 0.2), ("e2", 0.5)):
        store.save("r", name.encode(), _meta(name, value))
    store.save("other", b"x", _meta("e0"))
    assert [c.version for c in store.infos("r")] == [1, 2, 3]
    assert store.resolve("r", "latest").name == "e2"
    assert store.resolve("r", "best").name == "e1"
    assert store.resolve("r", 1).name == "e0"
    assert store.resolve("r", "e2").version == 3
    assert store.resolve("other", "latest").version == 1
    assert sorted({c.run for c in list_checkpoints(db_url, table=models)}) == ["other", "r"]


def test_saving_a_name_again_replaces_the_older_checkpoint_of_that_name(db_url: str, models: str) -> None:
    store = CheckpointStore(db_url, models)
    store.save("r", b"first", _meta("last"))
    store.save("r", b"keep", _meta("e0"))
    store.save("r", b"second", _meta("last"))
    assert [(c.version, c.name) for c in store.infos("r")] == [(2, "e0"), (3, "last")]
    assert store.read(store.resolve("r", "last")) == b"second"
    with store.db.connect() as conn:
        chunk_versions = conn.execute(sa.select(store.tables.chunks.c.version).distinct()).scalars().all()
    assert sorted(chunk_versions) == [2, 3]


def test_identical_bytes_are_stored_once_and_kept_while_referenced(db_url: str, models: str) -> None:
    store = CheckpointStore(db_url, models, chunk_size=100)
    payload = os.urandom(250)
    store.save("r", payload, _meta("epoch=1"))
    twin = store.save("r", payload, _meta("last"))
    assert (twin.version, twin.data_version, twin.chunk_count) == (2, 1, 3)

    def chunk_versions() -> list[int]:
        with store.db.connect() as conn:
            return conn.execute(sa.select(store.tables.chunks.c.version)).scalars().all()

    assert chunk_versions() == [1, 1, 1]
    store.delete("r", [1])  # the top-k checkpoint goes; `last` still needs its bytes
    assert store.read(store.resolve("r", "last")) == payload
    assert chunk_versions() == [1, 1, 1]
    store.save("r", b"newer", _meta("last"))  # replacing `last` frees them
    assert sorted(set(chunk_versions())) == [3]
    assert [c.name for c in store.infos("r")] == ["last"]


def test_a_flipped_byte_is_reported_with_run_and_version(db_url: str, models: str) -> None:
    io_ = DM8CheckpointIO(db_url, table=models, chunk_size=4096)
    io_.save_checkpoint({"state_dict": {"w": torch.arange(5000, dtype=torch.float32)}}, "dm8:net:weights")
    store = io_.store()
    chunks = store.tables.chunks
    where = (chunks.c.run == "net") & (chunks.c.version == 1) & (chunks.c.chunk_no == 2)
    with store.db.begin() as conn:
        data = bytearray(conn.execute(sa.select(chunks.c.data).where(where)).scalar_one())
        data[100] ^= 0xFF
        conn.execute(chunks.update().where(where).values(data=bytes(data)))
    with pytest.raises(CheckpointCorruptError, match=r"'net' version 1 .*SHA-256"):
        load_checkpoint(db_url, "net", 1, table=models)
    with pytest.raises(CheckpointCorruptError, match="'net' version 1"):
        io_.load_checkpoint("dm8:net:weights")


def test_a_missing_chunk_is_reported_as_corrupt(db_url: str, models: str) -> None:
    store = CheckpointStore(db_url, models, chunk_size=10)
    store.save("r", bytes(range(35)), _meta("a"))
    chunks = store.tables.chunks
    with store.db.begin() as conn:
        conn.execute(chunks.delete().where(chunks.c.chunk_no == 1))
    with pytest.raises(CheckpointCorruptError, match=r"'r' version 1 .*chunk 1 of 4 is missing"):
        store.read(store.resolve("r", 1))


@pytest.mark.parametrize("slice_size", [250, 300, 1 << 20])
def test_chunks_read_in_slices_come_back_exactly(db_url: str, models: str, slice_size: int, monkeypatch) -> None:
    """PostgreSQL and SQLite read a chunk in slices: chunks ending on and off a slice edge, and one slice per chunk."""
    monkeypatch.setattr(blobs_module, "SLICE_SIZE", slice_size)
    store = CheckpointStore(db_url, models, chunk_size=1000)
    payload = os.urandom(4500) + bytes(2000)
    store.save("r", payload, _meta("a"))
    assert store.read(store.resolve("r", 1)) == payload


def _replace_chunk(store: CheckpointStore, number: int, change: Any) -> None:
    chunks = store.tables.chunks
    where = (chunks.c.run == "r") & (chunks.c.version == 1) & (chunks.c.chunk_no == number)
    with store.db.begin() as conn:
        data = conn.execute(sa.select(chunks.c.data).where(where)).scalar_one()
        conn.execute(chunks.update().where(where).values(data=change(bytes(data))))


def _flip_byte_700(data: bytes) -> bytes:
    return data[:700] + bytes([data[700] ^ 0xFF]) + data[701:]


@pytest.mark.parametrize(("number", "change", "problem"), [
    (2, _flip_byte_700, r"SHA-256 [0-9a-f]{64} differs from the recorded"),
    (6, lambda data: data + b"xx", "chunk 6 runs past the recorded size of 6500 bytes"),
    (3, lambda data: data[:-1], "the chunks hold 6499 bytes, the header records 6500"),
    (6, lambda data: data[:-1], "the chunks hold 6499 bytes, the header records 6500"),
])
def test_a_changed_chunk_is_caught_in_any_slice(
    db_url: str, models: str, number: int, change: Any, problem: str, monkeypatch
) -> None:
    """A flipped byte in a chunk's third slice, a chunk that grew or shrank: all refused before unpickling."""
    monkeypatch.setattr(blobs_module, "SLICE_SIZE", 300)
    store = CheckpointStore(db_url, models, chunk_size=1000)
    store.save("r", os.urandom(6500), _meta("a"))
    _replace_chunk(store, number, change)
    with pytest.raises(CheckpointCorruptError, match=f"'r' version 1 .*is corrupt: {problem}"):
        store.read(store.resolve("r", 1))


class _DeletedAfterFirstSlice(ChunkIO):
    """Deletes the checkpoint (from another connection) right after the first slice of its first chunk arrived."""

    @contextmanager
    def opener(self, conn: sa.Connection, info: CheckpointInfo) -> Iterator[ChunkOpener]:
        with super().opener(conn, info) as open_chunk:

            def open_then_delete(number: int) -> tuple[int, Iterator[Any]] | None:
                opened = open_chunk(number)
                if number > 0 or opened is None:
                    return opened
                length, pieces = opened
                first = next(pieces)
                CheckpointStore(self.db, self.headers.table).delete(info.run, [info.version])  # another connection
                return length, itertools.chain([first], pieces)

            yield open_then_delete


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_checkpoint_deleted_between_two_slices_is_reported_as_deleted(
    backend: str, db_url: str, models: str, monkeypatch
) -> None:
    """PostgreSQL reads each slice in its own snapshot: the rest of the chunk is gone, not silently skipped."""
    monkeypatch.setattr(blobs_module, "SLICE_SIZE", 300)
    store = CheckpointStore(db_url, models, chunk_size=1000)
    store.chunks = _DeletedAfterFirstSlice(store.db, store.tables, store.headers)
    store.save("r", os.urandom(2500), _meta("a"))
    with pytest.raises(CheckpointNotFoundError, match="'r' version 1 was deleted .* while it was being read"):
        store.read(store.resolve("r", 1))


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd is Linux only")
def test_a_loaded_checkpoint_is_mapped_from_an_in_memory_file_and_stays_private(db_url: str, models: str) -> None:
    """Tensors are views of the memfd the bytes were fetched into; the file is closed after the load, the tensors
    keep their pages, and writing into one changes neither the stored bytes nor the next load."""
    weights = torch.randn(300_000, generator=torch.Generator().manual_seed(3))
    io_ = DM8CheckpointIO(db_url, table=models, chunk_size=100_000)
    io_.save_checkpoint({"state_dict": {"w": weights}, "epoch": 2}, "dm8:net:n")
    before = _open_fds()
    loaded = io_.load_checkpoint("dm8:net:n")
    assert _open_fds() <= before  # the memfd is closed; the mapping alone keeps the pages
    first = loaded["state_dict"]["w"]
    assert torch.equal(first, weights) and loaded["epoch"] == 2
    first.mul_(0)  # copy on write: private to this tensor
    again = io_.load_checkpoint("dm8:net:n")["state_dict"]["w"]
    assert torch.equal(again, weights) and not torch.equal(first, again)
    io_.teardown()


def test_loads_without_memfd_read_from_memory(db_url: str, models: str, monkeypatch) -> None:
    """Where the system has no memfd the verified bytes wait in an io.BytesIO, and a corrupt chunk is still refused."""
    monkeypatch.delattr(os, "memfd_create", raising=False)
    store = CheckpointStore(db_url, models, chunk_size=1000)
    with payload_file() as file:
        assert isinstance(file, io.BytesIO)
    checkpoint = {"state_dict": {"w": torch.arange(2000, dtype=torch.float32)}}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    store.save("r", buffer.getvalue(), _meta("a"))
    loaded = store.load(store.resolve("r", 1), "cpu")
    assert torch.equal(loaded["state_dict"]["w"], checkpoint["state_dict"]["w"])
    _replace_chunk(store, 3, _flip_byte_700)
    with pytest.raises(CheckpointCorruptError, match=r"'r' version 1 .*SHA-256"):
        store.load(store.resolve("r", 1), "cpu")


@pytest.mark.parametrize("number", [0, 5])
def test_a_corrupt_load_leaves_no_file_and_no_thread_behind(
    db_url: str, models: str, number: int, monkeypatch
) -> None:
    """A flipped byte in the first or a later chunk: refused before torch.load sees a byte, with the in-memory file
    closed and the hashing thread gone, and a good load right after works."""
    monkeypatch.setattr(blobs_module, "SLICE_SIZE", 300)
    store = CheckpointStore(db_url, models, chunk_size=1000)
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(2000, dtype=torch.float32)}, buffer)
    store.save("r", buffer.getvalue(), _meta("a"))
    _replace_chunk(store, number, _flip_byte_700)
    fds = _open_fds()
    with pytest.raises(CheckpointCorruptError, match=r"'r' version 1 .*SHA-256"):
        store.load(store.resolve("r", 1), "cpu")
    assert _open_fds() <= fds
    assert not [t for t in threading.enumerate() if t.name.startswith("ldm8-sha256")]
    _replace_chunk(store, number, _flip_byte_700)  # flipped back
    assert torch.equal(store.load(store.resolve("r", 1), "cpu")["w"], torch.arange(2000, dtype=torch.float32))


@pytest.mark.parametrize("backend", ["postgresql"])
def test_new_postgresql_chunk_tables_do_not_try_to_compress(backend: str, db_url: str, models: str) -> None:
    """New chunk tables store ``data`` EXTERNAL (no pglz attempt); an existing table keeps its own setting."""
    store = CheckpointStore(db_url, models)
    store.ensure_tables()

    def storage() -> str:
        with store.db.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT attstorage FROM pg_attribute WHERE attrelid = %(t)s::regclass AND attname = 'data'",
                {"t": store.tables.chunks.name},
            ).scalar_one()

    assert storage() == "e"
    with store.db.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {store.tables.chunks.name} ALTER COLUMN data SET STORAGE EXTENDED")
    CheckpointStore(db_url, models).ensure_tables()
    assert storage() == "x"


def test_missing_table_run_and_version_say_what_exists(db_url: str, models: str) -> None:
    with pytest.raises(CheckpointNotFoundError, match=f"no model table '{models}'.*nothing has been saved"):
        load_checkpoint(db_url, "r", table=models)
    store = CheckpointStore(db_url, models)
    store.save("r", b"one", _meta("first"))
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint of run 'q'.*runs with checkpoints: r"):
        load_checkpoint(db_url, "q", table=models)
    with pytest.raises(CheckpointNotFoundError, match=r"run 'r' has no version 7 .*versions 1 \(first\)"):
        load_checkpoint(db_url, "r", 7, table=models)
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint named 'last'"):
        load_checkpoint(db_url, "r", "last", table=models)
    assert isinstance(CheckpointNotFoundError("x"), FileNotFoundError)  # what Lightning expects from an IO


@pytest.mark.parametrize("bad", ["dm8:", "dm8:run", "dm8::best", "dm8:run:", "dm8:a/b:1", "dm8:r:0"])
def test_bad_ckpt_path_forms_are_rejected(bad: str, tmp_path) -> None:
    io_ = DM8CheckpointIO(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(InvalidCheckpointPathError, match="bad checkpoint path"):
        io_.load_checkpoint(bad)


def test_io_falls_back_to_files_and_removes_idempotently(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    io_ = DM8CheckpointIO(url)
    plain = tmp_path / "sub" / "plain.ckpt"
    io_.save_checkpoint({"epoch": 3}, plain)
    assert torch.load(plain)["epoch"] == 3
    assert io_.load_checkpoint(plain)["epoch"] == 3
    io_.remove_checkpoint(plain)
    io_.remove_checkpoint(plain)
    assert not plain.exists()
    with pytest.raises(FileNotFoundError):
        io_.load_checkpoint(plain)

    io_.save_checkpoint({"epoch": 4}, "dm8:r:manual")
    assert [(c.name, c.kind) for c in list_checkpoints(url, "r")] == [("manual", "manual")]
    io_.remove_checkpoint("dm8:r:manual")
    io_.remove_checkpoint("dm8:r:manual")
    io_.remove_checkpoint("dm8:never:1")
    assert list_checkpoints(url) == []
    with pytest.raises(InvalidCheckpointPathError, match="select existing checkpoints"):
        io_.save_checkpoint({"epoch": 5}, "dm8:r:best")
    with pytest.raises(TypeError, match="storage_options"):
        io_.save_checkpoint({"epoch": 5}, "dm8:r:x", storage_options={"a": 1})
    io_.teardown()
    assert io_.db._engine.peek() is None  # connections closed


def test_unfinished_saves_are_invisible_and_cleaned_by_the_next_save(db_url: str, models: str) -> None:
    store = CheckpointStore(db_url, models, chunk_size=8)
    store.save("r", b"good checkpoint", _meta("a"))
    header, chunks = store.tables.header, store.tables.chunks
    with store.db.begin() as conn:  # what a save killed after its first chunk leaves behind
        conn.execute(header.insert().values(
            run="r", version=2, name="b", kind="periodic", created_at=store.infos("r")[0].created_at,
            size_bytes=64, sha256="0" * 64, chunk_count=8, complete=0, data_version=2,
        ))
        conn.execute(chunks.insert().values(run="r", version=2, chunk_no=0, data=b"partial!"))
    assert [c.version for c in store.infos("r")] == [1]
    assert store.resolve("r", "latest").version == 1
    assert [c.complete for c in store.infos("r", include_incomplete=True)] == [True, False]
    store.save("r", b"next", _meta("c"))
    assert [(c.version, c.complete) for c in store.infos("r", include_incomplete=True)] == [(1, True), (2, True)]
    assert store.read(store.resolve("r", 2)) == b"next"


def test_mysql_chunks_stay_below_max_allowed_packet() -> None:
    assert mysql_chunk_limit(16 << 20) < (16 << 20) // 2
    assert mysql_chunk_limit(1 << 30) > 32 << 20


@pytest.mark.parametrize("backend", ["mysql"])
def test_mysql_server_packet_limit_is_applied(backend: str, db_url: str, models: str) -> None:
    store = CheckpointStore(db_url, models)
    with store.db.connect() as conn:
        packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one()
        assert store.effective_chunk_size(conn) == min(32 << 20, mysql_chunk_limit(packet))


def test_saved_bytes_are_what_torch_save_writes(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    checkpoint = {"state_dict": {"w": torch.randn(10, 10)}, "epoch": 1}
    DM8CheckpointIO(url).save_checkpoint(checkpoint, "dm8:r:n")
    store = CheckpointStore(Database(url))
    reloaded = torch.load(io.BytesIO(store.read(store.resolve("r", "n"))))
    assert torch.equal(reloaded["state_dict"]["w"], checkpoint["state_dict"]["w"])
