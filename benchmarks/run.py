"""One command for every benchmark figure: ``python -m benchmarks.run --out benchmarks/results``.

Builds the data in each backend, measures the project's loader and the baselines, checkpoint IO and memory, and
writes ``results.json``, ``results.md`` and PNG plots into ``--out``. Working data (SQLite files, LMDB caches,
litdata chunks, checkpoint files) lives in a temporary directory that is removed at the end; tables written into
the servers are dropped.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from benchmarks import (
    checkpoint_io,
    data,
    fullscan,
    inmemory,
    litdata_baseline,
    loader,
    machine,
    memory,
    naive,
    report,
)
from benchmarks.common import Settings, loadavg, record

SECTIONS = ("loader", "naive", "fullscan", "memory-baselines", "litdata", "checkpoint", "memory")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results", help="where results.json/.md and the PNGs go")
    p.add_argument("--backends", default="sqlite,postgresql,mysql", help="comma-separated: sqlite,postgresql,mysql")
    p.add_argument("--dm8-url", default=os.environ.get("LIGHTNING_DM8_TEST_URL"),
                   help="also measure DM8 (default: $LIGHTNING_DM8_TEST_URL)")
    p.add_argument("--rows", type=int, default=50_000, help="CIFAR-sized rows")
    p.add_argument("--text-rows", type=int, default=120_000, help="AG-News-sized token rows")
    p.add_argument("--datasets", default="cifar,agnews")
    p.add_argument("--passes", type=int, default=3, help="timed passes per figure (the median is reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes before them")
    p.add_argument("--workers", default="0,1,2,4", help="num_workers values")
    p.add_argument("--noprefetch-rows", type=int, default=500,
                   help="rows of the table the prefetch-off cases read (one query per row is slow)")
    p.add_argument("--naive-rows", type=int, default=5_000, help="random samples per naive pass")
    p.add_argument("--memory-rows", default="50000,500000", help="table sizes for the memory figures")
    p.add_argument("--memory-backends", default="sqlite")
    p.add_argument("--memory-workers", default="0,2")
    p.add_argument("--checkpoint-mb", type=int, default=100)
    p.add_argument("--epoch-limit", type=float, default=8.0,
                   help="seconds after which a pass stops early (rows/s over the rows delivered; said in the notes)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="intra-op threads of the consuming process (0: torch's default)")
    p.add_argument("--skip", default="", help=f"comma-separated sections to leave out: {','.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one pass, workers 0 and 2 (a smoke test)")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace, tmp: Path) -> Settings:
    backends = [b for b in args.backends.split(",") if b]
    if args.dm8_url and "dm" not in backends:
        backends.append("dm")
    s = Settings(out=Path(args.out), tmp=tmp, backends=backends, rows=args.rows, text_rows=args.text_rows,
                 passes=args.passes, warmup=args.warmup, workers=tuple(int(w) for w in args.workers.split(",")),
                 noprefetch_rows=args.noprefetch_rows, naive_rows=args.naive_rows,
                 memory_rows=tuple(int(r) for r in args.memory_rows.split(",") if r),
                 memory_backends=tuple(b for b in args.memory_backends.split(",") if b),
                 checkpoint_mb=args.checkpoint_mb, epoch_limit_s=args.epoch_limit, quick=args.quick,
                 skip=set(filter(None, args.skip.split(","))))
    if args.quick:
        s.rows, s.text_rows, s.passes, s.warmup = min(s.rows, 300), min(s.text_rows, 400), 1, 0
        s.workers = tuple(int(w) for w in args.workers.split(",")) if args.workers != "0,1,2,4" else (0, 1)
        s.noprefetch_rows, s.naive_rows = 50, 100
        s.memory_rows, s.memory_workers, s.checkpoint_mb = (500, 1_500), (0,), min(s.checkpoint_mb, 2)
    else:
        s.memory_workers = tuple(int(w) for w in args.memory_workers.split(","))
    s.urls = {b: data.backend_url(b, tmp, args.dm8_url) for b in backends}
    return s


SHAPES: dict[str, tuple[tuple[int, ...] | None, str]] = {"cifar": ((3, 32, 32), "uint8"), "agnews": (None, "<i8")}


def raise_open_files_limit() -> tuple[int, int]:
    """Soft limit on open files up to the hard limit: batches of ragged rows pass one tensor (one file descriptor,
    torch's default sharing strategy) per sample from a worker, more than the usual soft limit of 1,024 allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def guarded(doc: dict[str, Any], what: str, work: Any, *args: Any) -> Any:
    """Run one measurement; a failure becomes a gap in the report instead of ending the run."""
    try:
        return work(*args)
    except Exception as exc:  # noqa: BLE001 - one failing baseline must not lose the other figures
        traceback.print_exc()
        doc["gaps"].append(f"{what}: stopped by {type(exc).__name__}: {exc}")
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    open_files = raise_open_files_limit()
    tmp = Path(tempfile.mkdtemp(prefix="ldm8bench-"))
    s = settings_from(args, tmp)
    datasets = [d for d in args.datasets.split(",") if d]
    started, load_start = time.perf_counter(), loadavg()
    doc: dict[str, Any] = {
        "command": "python -m benchmarks.run "
        + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "load_average": {"start": load_start},
        "config": {"backends": s.backends, "datasets": datasets, "rows": {"cifar": s.rows, "agnews": s.text_rows},
                   "passes": s.passes, "warmup": s.warmup, "workers": list(s.workers), "batch_size": s.batch_size,
                   "noprefetch_rows": s.noprefetch_rows, "naive_rows": s.naive_rows,
                   "memory_rows": list(s.memory_rows), "memory_backends": list(s.memory_backends),
                   "memory_workers": list(s.memory_workers), "checkpoint_mb": s.checkpoint_mb,
                   "epoch_limit_s": s.epoch_limit_s,
                   "torch_threads": torch.get_num_threads(), "open_files_limit": list(open_files),
                   "torch_sharing_strategy": torch.multiprocessing.get_sharing_strategy(), "quick": s.quick},
        "results": [], "gaps": [], "notes": [], "table_sizes": [],
    }
    results, gaps = doc["results"], doc["gaps"]
    print(f"benchmarks: working directory {tmp}; load average {load_start}", flush=True)
    try:
        doc["machine"] = machine.describe(s.urls)
        samples = {d: data.make(d, s.rows if d == "cifar" else s.text_rows) for d in datasets}
        for d, smp in samples.items():
            if "memory-baselines" not in s.skip:
                results += guarded(doc, f"TensorDataset ({d})", inmemory.run, s, smp) or []
                found = guarded(doc, f"consume only ({d})", inmemory.consume_only, s, smp)
                results += [found] if found else []
            if "litdata" not in s.skip:
                found, missing = guarded(doc, f"litdata ({d})", litdata_baseline.run, s, smp) or ([], [])
                results += found
                gaps += missing
        for backend in s.backends:
            _backend(s, backend, samples, doc)
        if "checkpoint" not in s.skip:
            _checkpoints(s, doc)
        if "memory" not in s.skip:
            _memory(s, doc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in results:
        if r.get("note"):
            where = "/".join(str(r[k]) for k in ("backend", "dataset") if k in r)
            extra = "".join(f", {k}={r[k]}" for k in ("num_workers", "phase", "client") if k in r)
            doc["notes"].append(f"{r['method']} {where}{extra}: {r['note']}")
    doc["load_average"]["end"] = loadavg()
    doc["elapsed_s"] = round(time.perf_counter() - started, 1)
    from benchmarks.analysis import targets

    doc["targets"] = targets(results, s.backends, datasets, list(s.workers))
    report.write(doc, Path(args.out))
    print(f"benchmarks: wrote {args.out}/results.json, results.md, {', '.join(doc['plots'])} "
          f"in {doc['elapsed_s']:.0f} s; load average {doc['load_average']['end']}", flush=True)
    return 0


def _backend(s: Settings, backend: str, samples: dict[str, data.Samples], doc: dict[str, Any]) -> None:
    url = s.urls[backend]
    written: list[str] = []
    try:
        for name, smp in samples.items():
            n = len(smp)
            shape, dtype = SHAPES[name]
            print(f"{backend}/{name}: writing {n:,} rows", flush=True)
            start = time.perf_counter()
            table = data.write(url, smp)
            elapsed = time.perf_counter() - start
            written.append(table)
            doc["results"].append(record("build", "write_arrays", {"rows": n, "times_s": [round(elapsed, 4)],
                                                                   "median_s": round(elapsed, 4),
                                                                   "rows_per_s": round(n / elapsed, 1)},
                                         backend=backend, dataset=name))
            size = data.table_bytes(url, table)
            doc["table_sizes"].append({"backend": backend, "dataset": name, "rows": n, "raw_mb": smp.nbytes / 1e6,
                                       "table_mb": None if size is None else size / 1e6})
            small_n = min(n, s.noprefetch_rows)
            small = data.write(url, smp, small_n) if small_n < n else table
            if small != table:
                written.append(small)
            where = f"{backend}/{name}"
            if "fullscan" not in s.skip:
                found, missing = guarded(doc, f"full-table reads {where}", fullscan.run, s, backend, url, name, table,
                                         n, shape, dtype, smp) or ([], [])
                doc["results"].extend(found)
                doc["gaps"].extend(missing)
            if "naive" not in s.skip:
                doc["results"].extend(guarded(doc, f"naive {where}", naive.run, s, backend, url, name, table, n,
                                              shape, dtype) or [])
            if "loader" not in s.skip:
                doc["results"].extend(guarded(doc, f"DM8 loader {where}", loader.run, s, backend, url, name, table,
                                              n, small, small_n) or [])
    except Exception as exc:  # noqa: BLE001 - one backend failing must not lose the others' figures
        traceback.print_exc()
        doc["gaps"].append(f"{backend}: stopped by {type(exc).__name__}: {exc}")
    finally:
        data.drop(url, written)


def _checkpoints(s: Settings, doc: dict[str, Any]) -> None:
    cls, problem = checkpoint_io.available()
    checkpoint = checkpoint_io.make_checkpoint(s.checkpoint_mb)
    size = checkpoint_io.serialized_size(checkpoint, s.tmp)
    doc["results"].extend(checkpoint_io.run_local(s, checkpoint, size))
    if cls is None:
        doc["gaps"].append(problem)
        return
    for backend in s.backends:
        try:
            found = checkpoint_io.run_db(s, backend, s.urls[backend], checkpoint, size)
            doc["results"].extend(found)
            print("  checkpoint " + ", ".join(f"{r['backend']} {r['op']} {r['mb_per_s']} MB/s" for r in found),
                  flush=True)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            doc["gaps"].append(f"checkpoint IO on {backend}: {type(exc).__name__}: {exc}")


def _memory(s: Settings, doc: dict[str, Any]) -> None:
    for backend in s.memory_backends:
        url = s.urls.get(backend) or data.backend_url(backend, s.tmp)
        for rows in s.memory_rows:
            table = None
            try:
                print(f"memory {backend}: writing {rows:,} rows", flush=True)
                table = data.write_large(url, "cifar", rows)
                size = data.table_bytes(url, table)
                for nw in s.memory_workers:
                    r = memory.measure_in_subprocess(url, table, nw, s.tmp)
                    doc["results"].append(record(
                        "memory", "dm8", {}, backend=backend, dataset="cifar", rows=rows, num_workers=nw,
                        main_peak_mb=round(r["main_peak_kb"] / 1024, 1),
                        worker_peak_mb=round(max(r["worker_peaks_kb"]) / 1024, 1) if r["worker_peaks_kb"] else None,
                        worker_peaks_mb=[round(v / 1024, 1) for v in r["worker_peaks_kb"]],
                        main_anon_peak_mb=round(r["main_anon_peak_kb"] / 1024, 1),
                        worker_anon_peak_mb=round(max(r["worker_anon_peaks_kb"]) / 1024, 1)
                        if r["worker_anon_peaks_kb"] else None,
                        children_maxrss_mb=round(r["children_maxrss_kb"] / 1024, 1),
                        cache_mb=round(r["cache_bytes"] / 1e6, 1), raw_mb=round(rows * (3072 + 8) / 1e6, 1),
                        table_mb=None if size is None else round(size / 1e6, 1),
                        cold_s=r["cold_s"], warm_s=r["warm_s"]))
                    print(f"  memory {backend} {rows:,} rows nw={nw}: main {r['main_peak_kb'] / 1024:.0f} MB "
                          f"(anonymous {r['main_anon_peak_kb'] / 1024:.0f} MB), "
                          f"workers {[round(v / 1024) for v in r['worker_peaks_kb']]} MB, "
                          f"cache {r['cache_bytes'] / 1e6:.0f} MB", flush=True)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                doc["gaps"].append(f"memory on {backend} at {rows:,} rows: {type(exc).__name__}: {exc}")
            finally:
                if table:
                    data.drop(url, [table])


if __name__ == "__main__":
    sys.exit(main())
