"""Shared pieces: run settings, timing (median of passes after a warm-up), consuming batches, result records."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Settings:
    """What one run measures and how often."""

    out: Path
    tmp: Path
    backends: list[str]
    rows: int = 50_000
    text_rows: int = 120_000
    passes: int = 3
    warmup: int = 1
    workers: tuple[int, ...] = (0, 1, 2, 4)
    batch_size: int = 128
    noprefetch_rows: int = 500
    naive_rows: int = 5_000
    memory_rows: tuple[int, ...] = (50_000, 500_000)
    memory_backends: tuple[str, ...] = ("sqlite",)
    memory_workers: tuple[int, ...] = (0, 2)
    checkpoint_mb: int = 100
    epoch_limit_s: float = 8.0
    quick: bool = False
    urls: dict[str, str] = field(default_factory=dict)
    skip: set[str] = field(default_factory=set)


def consume(batch: Any) -> float:
    """What a training step does to a batch at the least: touch every tensor (``x.float().sum()``)."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        features, labels = batch
    else:
        features, labels = batch, None
    if isinstance(features, (list, tuple)):
        total = torch.cat([f.reshape(-1) for f in features]).float().sum()
    else:
        total = features.float().sum()
    if labels is not None:
        total = total + labels.float().sum()
    return float(total)


def batch_rows(batch: Any) -> int:
    features = batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch
    return len(features)


def run_epoch(batches: Iterable[Any], time_limit: float | None = None) -> int:
    """Iterate one epoch, consuming every batch; returns the number of samples seen.

    With ``time_limit`` (seconds) a very slow epoch stops early (the caller reports a partial pass).
    """
    seen = 0
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    for batch in batches:
        consume(batch)
        seen += batch_rows(batch)
        if deadline is not None and time.perf_counter() > deadline:
            break
    return seen


def measure(
    run: Callable[[], int], passes: int, warmup: int = 0, prepare: Callable[[], None] | None = None,
    expect: int | None = None, partial_ok: bool = False,
) -> dict[str, Any]:
    """Time ``run`` ``passes`` times after ``warmup`` untimed runs; ``prepare`` runs (untimed) before each.

    ``run`` returns the rows it delivered, checked against ``expect`` when given; with ``partial_ok`` a pass may
    deliver fewer (it stopped at its time limit) and the result says so.
    """
    times: list[float] = []
    rates: list[float] = []
    rows = 0
    for i in range(warmup + passes):
        if prepare is not None:
            prepare()
        gc.collect()
        start = time.perf_counter()
        rows = run()
        elapsed = time.perf_counter() - start
        if expect is not None and rows != expect and not (partial_ok and rows < expect):
            raise RuntimeError(f"a pass delivered {rows} rows, expected {expect}")
        if i >= warmup:
            times.append(elapsed)
            rates.append(rows / elapsed if elapsed > 0 else 0.0)
    median = statistics.median(times)
    result = {"rows": rows, "times_s": [round(t, 5) for t in times], "median_s": round(median, 5),
              "rows_per_s": round(statistics.median(rates), 1) if median > 0 else None}
    if partial_ok and expect is not None and rows < expect:
        result["partial"] = True
        result["note"] = (f"partial epochs: each pass stopped at the epoch time limit ({rows:,} of {expect:,} rows "
                          f"in the last); rows/s over the rows delivered")
    return result


def record(section: str, method: str, result: dict[str, Any], **labels: Any) -> dict[str, Any]:
    """One figure: what was measured (section, method, backend, dataset, settings) and its timing."""
    return {"section": section, "method": method, **labels, **result}


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]
