"""Which checkpoint is "best", and which ones retention deletes: pure functions over header rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lightning_dm8.checkpoint.records import CheckpointInfo
from lightning_dm8.checkpoint.schema import KIND_PERIODIC
from lightning_dm8.errors import InvalidInputError

MODES = ("min", "max")
"""How a monitored metric ranks: lower is better (``min``) or higher is better (``max``)."""


def check_mode(mode: object, where: str) -> str:
    """``mode`` when it is ``"min"`` or ``"max"``; :class:`InvalidInputError` naming ``where`` otherwise."""
    if mode not in MODES:
        raise InvalidInputError(
            f"{where}: mode must be 'min' (lower is better, e.g. a loss) or 'max' (higher is better, e.g. an "
            f"accuracy); got {mode!r}"
        )
    return str(mode)


@dataclass(frozen=True)
class Retention:
    """Per-run retention: keep the ``save_top_k`` best periodic checkpoints by ``monitor`` (the newest ones when
    there is no monitor; -1 keeps all) and, in addition, the ``keep_last_n`` newest. ``last`` and manual checkpoints
    are never pruned.

    A policy owns only the periodic checkpoints saved under its own ``monitor`` and ``mode`` (without a monitor:
    those saved without one), so two ``DM8Checkpoint`` callbacks on one run, say ``val_loss``/``min`` and
    ``val_acc``/``max``, each keep their own top k.
    """

    monitor: str | None = None
    mode: str = "min"
    save_top_k: int = 1
    keep_last_n: int | None = None

    def __post_init__(self) -> None:
        check_mode(self.mode, "Retention")
        if self.save_top_k < -1:
            raise InvalidInputError(f"save_top_k must be -1 (keep all), 0 or more; got {self.save_top_k}")
        if self.keep_last_n is not None and self.keep_last_n < 1:
            raise InvalidInputError(f"keep_last_n must be None or at least 1; got {self.keep_last_n}")

    def owns(self, info: CheckpointInfo) -> bool:
        """Whether ``info`` is a periodic checkpoint saved under this policy's monitor and mode."""
        if not info.complete or info.kind != KIND_PERIODIC or info.monitor != self.monitor:
            return False
        return self.monitor is None or info.monitor_mode == self.mode

    def keeps(self, owned: Sequence[CheckpointInfo]) -> set[int]:
        """The versions of ``owned`` (checkpoints this policy owns) that it keeps."""
        if self.save_top_k == -1:
            return {c.version for c in owned}
        newest_first = sorted(owned, key=lambda c: c.version, reverse=True)
        if self.monitor:
            keep = {c.version for c in _ranked(owned, self.monitor, self.mode)[: self.save_top_k]}
        else:
            keep = {c.version for c in newest_first[: self.save_top_k]}
        if self.keep_last_n:
            keep |= {c.version for c in newest_first[: self.keep_last_n]}
        return keep


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


def versions_to_delete(infos: Sequence[CheckpointInfo], policies: Retention | Iterable[Retention]) -> list[int]:
    """The periodic versions that one of ``policies`` owns and none of them keeps, oldest first."""
    chosen = [policies] if isinstance(policies, Retention) else list(policies)
    owned_by_some: set[int] = set()
    kept: set[int] = set()
    for policy in chosen:
        owned = [c for c in infos if policy.owns(c)]
        owned_by_some |= {c.version for c in owned}
        kept |= policy.keeps(owned)
    return sorted(owned_by_some - kept)
