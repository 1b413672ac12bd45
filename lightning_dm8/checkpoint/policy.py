"""Which checkpoint is "best", and which ones retention deletes: pure functions over header rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lightning_dm8.checkpoint.records import CheckpointInfo
from lightning_dm8.checkpoint.schema import KIND_PERIODIC


@dataclass(frozen=True)
class Retention:
    """Per-run retention: keep the ``save_top_k`` best periodic checkpoints by ``monitor`` (the newest ones when
    there is no monitor; -1 keeps all) and, in addition, the ``keep_last_n`` newest. ``last`` and manual checkpoints
    are never pruned."""

    monitor: str | None = None
    mode: str = "min"
    save_top_k: int = 1
    keep_last_n: int | None = None


def _ranked(infos: Sequence[CheckpointInfo], monitor: str, mode: str) -> list[CheckpointInfo]:
    """Checkpoints of ``monitor`` best first; ties go to the older version (as ModelCheckpoint keeps the first);
    rows whose value is missing (NaN/inf at save time) come last."""
    scored = [c for c in infos if c.monitor == monitor]
    sign = 1.0 if mode == "min" else -1.0

    def key(c: CheckpointInfo) -> tuple[bool, float, int]:
        return (c.monitor_value is None, 0.0 if c.monitor_value is None else sign * c.monitor_value, c.version)

    return sorted(scored, key=key)


def pick_best(infos: Sequence[CheckpointInfo]) -> CheckpointInfo | None:
    """The best complete checkpoint by the metric and mode stored with the newest monitored one; the latest
    checkpoint when none was saved with a monitor (what ModelCheckpoint's ``best_model_path`` is then)."""
    complete = [c for c in infos if c.complete]
    monitored = [c for c in complete if c.monitor]
    if not monitored:
        return max(complete, key=lambda c: c.version, default=None)
    newest = max(monitored, key=lambda c: c.version)
    return _ranked(complete, newest.monitor or "", newest.monitor_mode or "min")[0]


def versions_to_delete(infos: Sequence[CheckpointInfo], policy: Retention) -> list[int]:
    """The periodic versions that ``policy`` does not keep, oldest first."""
    periodic = [c for c in infos if c.complete and c.kind == KIND_PERIODIC]
    if policy.save_top_k == -1:
        return []
    newest_first = sorted(periodic, key=lambda c: c.version, reverse=True)
    if policy.monitor:
        keep = {c.version for c in _ranked(periodic, policy.monitor, policy.mode)[: policy.save_top_k]}
    else:
        keep = {c.version for c in newest_first[: policy.save_top_k]}
    if policy.keep_last_n:
        keep |= {c.version for c in newest_first[: policy.keep_last_n]}
    return sorted(c.version for c in periodic if c.version not in keep)
