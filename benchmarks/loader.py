"""The project's loader: ``DM8DataModule.train_dataloader()``, one full epoch per pass, every batch consumed.

Cases per num_workers (0, 1, 2, 4):

* ``cold``: a fresh, empty ``cache_dir`` each pass: every row comes from the database (and fills the LMDB cache).
* ``warm``: the cache filled by an untimed epoch; each pass is a new data module over that cache (a later run).
* ``nocache``: ``cache_dir=None``: every epoch reads the database.
* each of the above with prefetch on (the defaults: ``block_size=256, prefetch_blocks=4, io_threads=2``) and off
  (``prefetch_blocks=0, block_size=1``: one query per row, nothing in flight ahead).
"""

from __future__ import annotations

import cProfile
import logging
import pstats
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, measure, record, run_epoch
from lightning_dm8 import DM8DataModule

PREFETCH_ON: dict[str, Any] = {}  # the defaults
PREFETCH_OFF: dict[str, Any] = {"prefetch_blocks": 0, "block_size": 1}

logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


def data_module(url: str, table: str, num_workers: int, cache_dir: str | None, batch_size: int,
                **options: Any) -> DM8DataModule:
    return DM8DataModule(url, train_table=table, batch_size=batch_size, num_workers=num_workers, cache_dir=cache_dir,
                         progress=False, **options)


def one_epoch(dm: DM8DataModule, time_limit: float | None = None) -> int:
    return run_epoch(dm.train_dataloader(), time_limit)


_LOCK_WAITS = ("<method 'acquire' of '_thread.lock' objects>", "<method 'acquire' of '_thread.RLock' objects>")


def wait_share(dm: DM8DataModule) -> dict[str, float]:
    """One more epoch of ``dm``, profiled: its seconds, and the seconds and share of them the consuming thread spent
    blocked on a lock (a prefetched block not there yet, the cache writer's flush). cProfile profiles only the thread
    that enables it, so the I/O threads' own work is not counted."""
    profile = cProfile.Profile()
    loader = dm.train_dataloader()
    start = time.perf_counter()
    profile.enable()
    run_epoch(loader)
    profile.disable()
    total = time.perf_counter() - start
    stats: Any = pstats.Stats(profile).stats  # type: ignore[attr-defined]  # the raw table pstats keeps
    waited = sum(v[2] for k, v in stats.items() if k[2] in _LOCK_WAITS)
    return {"epoch_s": round(total, 4), "wait_s": round(waited, 4), "wait_share": round(waited / total, 3)}


def _stats(dm: DM8DataModule) -> dict[str, Any]:
    stats = dm.epoch_stats.get("train")
    if stats is None:
        return {}
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in stats.as_dict().items()}


def measure_case(
    settings: Settings, url: str, table: str, rows: int, num_workers: int, phase: str, options: dict[str, Any],
) -> dict[str, Any]:
    """One (phase, prefetch, workers) case; returns its timing plus the last pass's ``dm.epoch_stats``."""
    tmp = Path(tempfile.mkdtemp(prefix="cache-", dir=settings.tmp))
    holder: dict[str, DM8DataModule] = {}

    def fresh(cache_dir: str | None) -> None:
        old = holder.pop("dm", None)
        if old is not None:
            old.teardown("fit")
        holder["dm"] = data_module(url, table, num_workers, cache_dir, settings.batch_size, **options)

    try:
        if phase == "cold":
            counter = iter(range(10**6))

            def prepare() -> None:
                fresh(str(tmp / f"c{next(counter)}"))
        elif phase == "warm":
            # Fill the cache (untimed) in this process: the same cache whoever fills it, and quicker than workers
            # handing ragged rows over one tensor at a time.
            filler = data_module(url, table, 0, str(tmp / "warm"), settings.batch_size, **options)
            one_epoch(filler)
            filler.teardown("fit")

            def prepare() -> None:
                fresh(str(tmp / "warm"))
        else:  # nocache: one module, every epoch from the database
            fresh(None)

            def prepare() -> None:
                return None

        # A cold pass without prefetch commits one cache transaction per row: no warm-up pass for it (the database
        # side is warm from the other cases anyway).
        warmup = 0 if phase == "cold" and options.get("prefetch_blocks") == 0 else settings.warmup
        result = measure(lambda: one_epoch(holder["dm"], settings.epoch_limit_s), settings.passes, warmup, prepare,
                         expect=rows, partial_ok=True)
        result["epoch_stats"] = _stats(holder["dm"])
        if num_workers == 0 and phase in ("cold", "warm") and not options:
            prepare()
            result["main_thread"] = wait_share(holder["dm"])
        return result
    finally:
        if "dm" in holder:
            holder["dm"].teardown("fit")
        shutil.rmtree(tmp, ignore_errors=True)


def run(settings: Settings, backend: str, url: str, dataset: str, table: str, rows: int,
        small_table: str, small_rows: int) -> list[dict[str, Any]]:
    out = []
    for num_workers in settings.workers:
        cases = (("on", PREFETCH_ON, table, rows), ("off", PREFETCH_OFF, small_table, small_rows))
        for prefetch, options, tbl, n in cases:
            for phase in ("cold", "warm", "nocache"):
                if prefetch == "off" and phase == "warm" and settings.quick:
                    continue
                result = measure_case(settings, url, tbl, n, num_workers, phase, options)
                out.append(record("loader", "dm8", result, backend=backend, dataset=dataset, num_workers=num_workers,
                                  phase=phase, prefetch=prefetch, cache=phase != "nocache",
                                  subset=n != rows))
                print(f"  dm8 {backend}/{dataset} nw={num_workers} prefetch={prefetch} {phase}: "
                      f"{result['rows_per_s']:,.0f} rows/s", flush=True)
    return out
