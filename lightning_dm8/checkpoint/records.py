"""What a header row says about a checkpoint, and how that is read from a Lightning checkpoint dict."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lightning_dm8.checkpoint.errors import CheckpointCorruptError
from lightning_dm8.checkpoint.schema import KIND_LAST, KIND_PERIODIC

_LAST_NAME = re.compile(r"^last(-v\d+)?$")  # ModelCheckpoint's own names for its `last` checkpoint

META_KEY = "lightning_dm8"
"""Key that ``DM8Checkpoint`` adds to each checkpoint dict: the model class and, per run, the monitored metric."""

MAX_CHECKPOINT_BYTES = 1 << 40
"""The largest checkpoint a header may claim (1 TiB). A load holds the whole checkpoint in memory, so anything
larger cannot be loaded anyway; a header claiming more was not written by this project."""
MAX_CHUNK_BYTES = 1 << 32
"""The largest value one chunk row can hold on any backend (MySQL's LONGBLOB; PostgreSQL and DM8 allow less)."""


@dataclass(frozen=True)
class CheckpointMeta:
    """The descriptive part of a header row, known before any byte is written."""

    name: str | None
    kind: str
    epoch: int | None = None
    global_step: int | None = None
    monitor: str | None = None
    monitor_value: float | None = None
    monitor_mode: str | None = None
    model_class: str | None = None


@dataclass(frozen=True)
class CheckpointInfo:
    """One header row of the model table."""

    run: str
    version: int
    name: str | None
    kind: str
    epoch: int | None
    global_step: int | None
    monitor: str | None
    monitor_value: float | None
    monitor_mode: str | None
    created_at: dt.datetime
    size_bytes: int
    sha256: str
    chunk_count: int
    model_class: str | None
    complete: bool
    data_version: int

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat(sep=" ", timespec="seconds")
        return out


def info_from_row(row: Any) -> CheckpointInfo:
    return info_from_mapping(row._mapping)


def info_from_mapping(m: Mapping[str, Any]) -> CheckpointInfo:
    """A header row as a :class:`CheckpointInfo`; :class:`CheckpointCorruptError` when its sizes do not hold
    together (checked here, before any reader allocates a buffer of the recorded size)."""
    info = CheckpointInfo(
        run=m["run"], version=int(m["version"]), name=m["name"], kind=m["kind"],
        epoch=_int_or_none(m["epoch"]), global_step=_int_or_none(m["global_step"]), monitor=m["monitor"],
        monitor_value=None if m["monitor_value"] is None else float(m["monitor_value"]),
        monitor_mode=m["monitor_mode"], created_at=m["created_at"], size_bytes=int(m["size_bytes"]),
        sha256=m["sha256"], chunk_count=int(m["chunk_count"]), model_class=m["model_class"],
        complete=bool(m["complete"]), data_version=int(m["data_version"]),
    )
    problem = header_problem(info)
    if problem:
        raise CheckpointCorruptError(
            f"the header row of checkpoint {info.run!r} version {info.version} is corrupt: {problem}. Nothing of it "
            f"is read; delete it by its number (lightning-dm8 checkpoints delete {info.run} {info.version}, or "
            f"delete_checkpoints(url, {info.run!r}, [{info.version}]))."
        )
    return info


def header_problem(info: CheckpointInfo) -> str | None:
    """What is impossible about the numbers of a header row, or None: a save writes ``size_bytes`` bytes in
    ``chunk_count`` chunk rows of at most :data:`MAX_CHUNK_BYTES`, owned by ``data_version`` (this version or an
    earlier one with the same bytes)."""
    size, count = info.size_bytes, info.chunk_count
    if info.version < 1 or not 1 <= info.data_version <= info.version:
        return f"version {info.version} with its bytes in version {info.data_version}"
    if size < 0 or count < 0:
        return f"it records {size} bytes in {count} chunks"
    if size > MAX_CHECKPOINT_BYTES:
        return f"it claims {size} bytes, more than the {MAX_CHECKPOINT_BYTES} bytes a checkpoint can have"
    if (size == 0) != (count == 0) or count > size or size > count * MAX_CHUNK_BYTES:
        return f"{size} bytes cannot fill {count} chunks"
    return None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def finite_or_none(value: Any) -> float | None:
    """A metric as a float the database can store: NaN and infinities become NULL (ranked last by "best")."""
    try:
        number = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def model_class_of(checkpoint: Mapping[str, Any]) -> str | None:
    """The LightningModule class path: as DM8Checkpoint recorded it, else LightningCLI's ``_class_path``."""
    meta = checkpoint.get(META_KEY)
    if isinstance(meta, Mapping) and meta.get("model_class"):
        return str(meta["model_class"])
    hparams = checkpoint.get("hyper_parameters")
    if isinstance(hparams, Mapping) and isinstance(hparams.get("_class_path"), str):
        return hparams["_class_path"]
    return None


def meta_from_checkpoint(
    checkpoint: Mapping[str, Any], run: str, name: str | None, default_kind: str, path: str | None = None
) -> CheckpointMeta:
    """Header fields from the dict Lightning saves; ``path`` is compared with the run's ``last`` path to tell the
    ``last`` checkpoint from a periodic one."""
    run_meta: Mapping[str, Any] = {}
    meta = checkpoint.get(META_KEY)
    if isinstance(meta, Mapping) and isinstance(meta.get("runs"), Mapping):
        run_meta = meta["runs"].get(run) or {}
    kind = default_kind
    if default_kind == KIND_PERIODIC and (
        (path is not None and run_meta.get("last_path") == path) or (not run_meta and _LAST_NAME.match(name or ""))
    ):
        kind = KIND_LAST
    monitor = run_meta.get("monitor")
    return CheckpointMeta(
        name=name,
        kind=kind,
        epoch=_int_or_none(checkpoint.get("epoch")),
        global_step=_int_or_none(checkpoint.get("global_step")),
        monitor=monitor,
        monitor_value=finite_or_none(run_meta.get("monitor_value")) if monitor else None,
        monitor_mode=run_meta.get("monitor_mode") if monitor else None,
        model_class=model_class_of(checkpoint),
    )
