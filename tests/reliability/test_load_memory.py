"""Fault 9 (load): a 1,000,000-row table streamed through a cold and a warm epoch with two workers.

The peak resident memory of each DataLoader worker (``VmHWM`` from ``/proc/<pid>/status``, read while the worker
is alive at the end of each epoch) must not grow by 15% or more from a 100,000-row table to a 1,000,000-row one:
a worker holds blocks, not the table. Each size runs in a fresh interpreter so both start from the same baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import lightning_dm8
from reliability.support import script_env

MEASURE = r"""
import json, sys, time
import numpy as np
from reliability.support import children, make_dm, memory_kb, train_loader

url, table, n, cache_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dm = make_dm(url, table, cache_dir, batch_size=1024, block_size=4096, num_workers=2, shuffle=True)
loader = train_loader(dm)
total = len(loader)
epochs = []
for epoch in range(2):
    seen = np.zeros(n, dtype=np.int8)
    peaks = {}
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        ids = y.numpy()
        x = x.numpy()
        assert (x[:, 0] == ids).all() and (x[:, 1] == ids * 7 + 3).all(), "a served row differs from the source"
        np.add.at(seen, ids, 1)
        if i % 50 == 0 or i >= total - 2:  # the workers are alive until the last batch has been taken
            for pid in children():
                mem = memory_kb(pid)
                if mem:
                    old = peaks.get(pid, {})
                    peaks[pid] = {k: max(v, old.get(k, 0)) for k, v in mem.items()}
    assert (seen == 1).all(), (
        f"rows not delivered exactly once: {(seen == 0).sum()} missing, {(seen > 1).sum()} repeated")
    stats = dm.epoch_stats["train"].as_dict()
    epochs.append({"seconds": time.perf_counter() - start, "workers": list(peaks.values()),
                   "queries": stats["queries"], "rows_from_cache": stats["rows_from_cache"]})
print("RESULT " + json.dumps(epochs))
"""


def make_table(url: str, name: str, n: int) -> None:
    ids = np.arange(n, dtype=np.int64)
    lightning_dm8.write_arrays(url, name, np.stack([ids, ids * 7 + 3], axis=1), ids, progress=False)  # 16 bytes


def measure(url: str, table: str, n: int, cache_dir) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", MEASURE, url, table, str(n), str(cache_dir)], env=script_env(),
                          check=False, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_worker_memory_does_not_grow_with_the_table(tmp_path) -> None:
    """SQLite only: on PostgreSQL writing the two tables alone takes about 25 s more and the test about 90 s more."""
    backend, url, table_name = "sqlite", f"sqlite:///{tmp_path / 'load.db'}", "load"
    results = {}
    for n in (100_000, 1_000_000):
        name = f"{table_name}_{n}"
        start = time.perf_counter()
        make_table(url, name, n)
        written = time.perf_counter() - start
        results[n] = measure(url, name, n, tmp_path / f"cache{n}")
        print(f"\n{backend} {n} rows: written in {written:.1f} s; " + "; ".join(
            f"epoch {e} ({'cold' if e == 0 else 'warm'}): {r['seconds']:.1f} s, {r['queries']} queries, worker VmHWM "
            f"{[w['VmHWM'] // 1024 for w in r['workers']]} MB, "
            f"RssAnon {[w['RssAnon'] // 1024 for w in r['workers']]} MB"
            for e, r in enumerate(results[n])))
    for n, epochs in results.items():
        assert epochs[1]["queries"] == 0 and epochs[1]["rows_from_cache"] >= n, "the warm epoch queried the database"
        assert all(len(e["workers"]) == 2 for e in epochs), "could not read both workers' memory"
    for epoch in range(2):
        small = max(w["VmHWM"] for w in results[100_000][epoch]["workers"])
        large = max(w["VmHWM"] for w in results[1_000_000][epoch]["workers"])
        growth = large / small - 1
        print(f"epoch {epoch}: peak worker VmHWM {small / 1024:.0f} MB at 100k rows, {large / 1024:.0f} MB at 1M rows "
              f"({growth:+.1%})")
        assert growth < 0.15, f"worker peak memory grew {growth:.1%} from 100k to 1M rows"
