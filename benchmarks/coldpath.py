"""Side by side, in one process and one run: the loader's cold (and warm) epoch against the full-table clients.

``python -m benchmarks.coldpath --backend postgresql --rows 50000`` writes the CIFAR-sized table (or ``--dataset
agnews``), then alternates the methods round by round (so a busy moment of the machine hits all of them), and
prints the median rows/s of each, its ratio to the fastest full-table client, the load average, and the main
thread's *data-wait share*: the part of a loader epoch the consuming thread spends blocked on a lock (waiting for a
prefetched block or the cache writer), from cProfile (which profiles only the thread that enables it).

It is the quick A/B tool for the read path; ``benchmarks.run`` is the whole grid.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import data, fullscan
from benchmarks.common import loadavg, run_epoch
from benchmarks.loader import data_module, wait_share
from benchmarks.run import SHAPES


def _epoch(url: str, table: str, cache_dir: str | None, batch_size: int) -> tuple[int, float]:
    dm = data_module(url, table, 0, cache_dir, batch_size)
    try:
        start = time.perf_counter()
        rows = run_epoch(dm.train_dataloader())
        return rows, time.perf_counter() - start
    finally:
        dm.teardown("fit")


def _wait_share(url: str, table: str, cache_dir: str | None, batch_size: int) -> dict[str, float]:
    dm = data_module(url, table, 0, cache_dir, batch_size)
    try:
        return wait_share(dm)
    finally:
        dm.teardown("fit")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.coldpath", description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="postgresql")
    p.add_argument("--dataset", default="cifar", choices=sorted(SHAPES))
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--clients", default="", help="comma-separated full-table clients to run (default: all)")
    p.add_argument("--warm", action="store_true", help="also time warm epochs")
    p.add_argument("--keep-table", action="store_true", help="leave the table in the database (faster reruns)")
    p.add_argument("--json", default="", help="also write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="ldm8cold-"))
    url = data.backend_url(args.backend, tmp)
    samples = data.make(args.dataset, args.rows)
    shape, dtype = SHAPES[args.dataset]
    table = data.table_name(args.dataset, args.rows)
    try:
        if not args.keep_table or not _exists(url, table, args.rows):
            table = data.write(url, samples)
        wanted = set(filter(None, args.clients.split(",")))
        clients = {k: v for k, v in fullscan.methods(url, table, shape, np.dtype(dtype)).items()
                   if not isinstance(v, str) and (not wanted or k in wanted)}
        for name, read in clients.items():
            ids, feats, labels = read()
            fullscan._check(name, ids, feats, labels, samples)
        times: dict[str, list[float]] = {k: [] for k in [*clients, "loader cold", "loader warm"]}
        load = [loadavg()]
        warm_dir = tmp / "warm"
        _epoch(url, table, str(warm_dir), args.batch_size)  # warm-up, and the warm epochs' cache
        for r in range(args.rounds):
            for name, read in clients.items():
                start = time.perf_counter()
                read()
                times[name].append(time.perf_counter() - start)
            rows, elapsed = _epoch(url, table, str(tmp / f"cold{r}"), args.batch_size)
            assert rows == args.rows, rows
            times["loader cold"].append(elapsed)
            shutil.rmtree(tmp / f"cold{r}", ignore_errors=True)
            if args.warm:
                times["loader warm"].append(_epoch(url, table, str(warm_dir), args.batch_size)[1])
            load.append(loadavg())
        rates = {k: args.rows / statistics.median(v) for k, v in times.items() if v}
        best = max((k for k in clients), key=lambda k: rates[k])
        profile_cold = _wait_share(url, table, str(tmp / "profiled"), args.batch_size)
        out = {"backend": args.backend, "dataset": args.dataset, "rows": args.rows, "load_average": load,
               "rows_per_s": {k: round(v) for k, v in rates.items()}, "fastest_client": best,
               "ratio_cold_vs_fastest": round(rates["loader cold"] / rates[best], 3),
               "cold_profiled": profile_cold}
        if args.warm:
            out["ratio_warm_vs_fastest"] = round(rates["loader warm"] / rates[best], 3)
        print(json.dumps(out, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
    finally:
        if not args.keep_table:
            data.drop(url, [table])
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _exists(url: str, table: str, rows: int) -> bool:
    from lightning_dm8 import DatasetTable

    try:
        return len(DatasetTable(url, table)) == rows
    except Exception:  # noqa: BLE001 - not there (or unreadable): write it
        return False


if __name__ == "__main__":
    raise SystemExit(main())
