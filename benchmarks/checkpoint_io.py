"""Checkpoint save and load of a ~100 MB state dict: the project's ``DM8CheckpointIO`` (a row set in the model
table) vs ``torch.save``/``torch.load`` to a local file.

The checkpoint looks like Lightning's: ``state_dict`` (float32 tensors of a few sizes adding up to the target), an
optimizer-free ``epoch``/``global_step`` and hyperparameters. Loads are checked tensor for tensor. Saves go to new
names each pass; everything written is deleted afterwards. Neither side calls fsync on the file (``torch.save``
does not); the databases commit with their default durability (PostgreSQL/MariaDB flush their logs at commit).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Settings, measure, record

TABLE = "ldm8bench_models"


def make_checkpoint(megabytes: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    target = megabytes * 10**6 // 4
    state: dict[str, torch.Tensor] = {}
    sizes = [(512, 512), (256, 1024), (1024,), (64, 3, 3, 3)]
    made, i = 0, 0
    while made < target:
        shape = sizes[i % len(sizes)]
        tensor = torch.randn(*shape, generator=generator)
        tensor = tensor.reshape(-1)[: target - made].clone() if tensor.numel() > target - made else tensor
        state[f"layers.{i}.weight"] = tensor
        made += tensor.numel()
        i += 1
    return {"epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.6", "state_dict": state,
            "hyper_parameters": {"lr": 0.1}}


def available() -> tuple[Any, str | None]:
    """The project's CheckpointIO class, or why it cannot be used."""
    try:
        module = importlib.import_module("lightning_dm8.checkpoint")
    except Exception as exc:  # noqa: BLE001
        return None, f"not measured: checkpoint IO not available ({type(exc).__name__}: {exc})"
    from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

    for name in dir(module):
        obj = getattr(module, name)
        if isinstance(obj, type) and issubclass(obj, CheckpointIO) and obj is not CheckpointIO:
            return obj, None
    return None, "not measured: checkpoint IO not available (no CheckpointIO subclass in lightning_dm8.checkpoint)"


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _read_every_tensor(checkpoint: dict[str, Any]) -> int:
    """Touch every byte of the loaded tensors, as copying them into a model would: a load that maps its tensors
    (``torch.load(mmap=True)``) brings their pages in only here, so a timed load that skipped this would time less
    than a load that reads them."""
    for tensor in checkpoint["state_dict"].values():
        tensor.view(-1).view(torch.uint8).max()
    return 0


def run_local(settings: Settings, checkpoint: dict[str, Any], size: int) -> list[dict[str, Any]]:
    path = Path(settings.tmp) / "bench.ckpt"
    counter = iter(range(10**6))
    save = measure(lambda: (torch.save(checkpoint, path.with_suffix(f".{next(counter)}.ckpt")), size)[1],
                   settings.passes, settings.warmup)
    target = path.with_suffix(".0.ckpt")
    loaded = torch.load(target, map_location="cpu", weights_only=False)
    if not _same(loaded["state_dict"], checkpoint["state_dict"]):
        raise RuntimeError("torch.load returned a different state dict")
    load = measure(lambda: _read_every_tensor(torch.load(target, map_location="cpu", weights_only=False)) + size,
                   settings.passes, settings.warmup)
    for p in Path(settings.tmp).glob("bench.*.ckpt"):
        p.unlink()
    return [record("checkpoint", "torch.save local file", _bytes(save), backend="file", op="save"),
            record("checkpoint", "torch.load local file", _bytes(load), backend="file", op="load")]


def run_db(settings: Settings, backend: str, url: str, checkpoint: dict[str, Any], size: int) -> list[dict[str, Any]]:
    cls, problem = available()
    if cls is None:
        raise RuntimeError(problem)
    io = cls(url, table=TABLE)
    counter = iter(range(10**6))
    names: list[str] = []

    def save() -> int:
        number = next(counter)
        name = f"dm8:bench:pass{number}"
        names.append(name)
        # A different global_step each pass: bytes identical to a stored checkpoint of the run are not written again
        # (the store points a new header at them), which would time a hash and a header instead of a save.
        io.save_checkpoint({**checkpoint, "global_step": number}, name)
        return size

    try:
        saved = measure(save, settings.passes, settings.warmup)
        loaded = io.load_checkpoint(names[0])
        if not _same(loaded["state_dict"], checkpoint["state_dict"]):
            raise RuntimeError(f"{cls.__name__}.load_checkpoint returned a different state dict")
        load = measure(lambda: _read_every_tensor(io.load_checkpoint(names[0])) + size,
                       settings.passes, settings.warmup)
    finally:
        for name in names:
            try:
                io.remove_checkpoint(name)
            except Exception:  # noqa: BLE001 - cleanup only
                pass
        _drop_tables(io)
    return [record("checkpoint", f"{cls.__name__}.save_checkpoint", _bytes(saved), backend=backend, op="save"),
            record("checkpoint", f"{cls.__name__}.load_checkpoint", _bytes(load), backend=backend, op="load")]


def _drop_tables(io: Any) -> None:
    import sqlalchemy as sa

    db = io.db
    try:
        with db.begin("drop benchmark model tables") as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if n.lower().startswith(TABLE)]
            for name in sorted(names, key=len, reverse=True):  # the chunk table (longer name) first
                sa.Table(name, sa.MetaData()).drop(conn)
    finally:
        db.dispose()


def _bytes(result: dict[str, Any]) -> dict[str, Any]:
    """Timing in bytes: ``rows`` is the checkpoint's size in bytes, so ``rows_per_s`` becomes MB/s here."""
    size = result.pop("rows")
    result["bytes"] = size
    result["mb_per_s"] = round(size / 1e6 / result["median_s"], 1)
    result.pop("rows_per_s", None)
    return result


def serialized_size(checkpoint: dict[str, Any], tmp: Path) -> int:
    path = Path(tmp) / "size.ckpt"
    torch.save(checkpoint, path)
    size = os.path.getsize(path)
    path.unlink()
    return size
