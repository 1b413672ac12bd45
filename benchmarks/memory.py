"""Peak memory of the project's loader, and the cache's size on disk, at two table sizes.

Each case runs in a fresh process (``python -m benchmarks.memory``) that holds none of the benchmark's arrays:
one cold epoch (database -> cache) then one warm epoch (cache), with the default settings and ``num_workers``
workers. A sampling thread reads ``VmHWM`` (peak resident set) from ``/proc/<pid>/status`` of the process and of
each DataLoader worker while it lives; ``resource.getrusage(RUSAGE_CHILDREN)`` cross-checks the largest worker.
Worker figures include the pages a forked worker shares with its parent.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _status_kb(pid: int | str, field: str = "VmHWM") -> int | None:
    """A ``/proc/<pid>/status`` figure in kB: ``VmHWM`` (peak resident set, including mapped file pages such as
    the LMDB cache's), ``RssAnon`` (resident anonymous memory now), ..."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _hwm_kb(pid: int | str) -> int | None:
    return _status_kb(pid, "VmHWM")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return found


class Sampler(threading.Thread):
    """Keeps the last seen VmHWM of every child process (VmHWM only grows, so the last read is its peak so far)."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self.anon_peaks: dict[int, int] = {}  # largest RssAnon seen: memory that is not a view of a file
        self.stop = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            for pid in [me, *_children(me)]:
                for field, peaks in (("VmHWM", self.peaks), ("RssAnon", self.anon_peaks)):
                    value = _status_kb(pid, field)
                    if value is not None:
                        peaks[pid] = max(value, peaks.get(pid, 0))
            time.sleep(self.interval)


def dir_bytes(path: Path) -> int:
    """Bytes the directory's files occupy on disk (allocated blocks: LMDB files are sparse)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def probe(url: str, table: str, num_workers: int) -> dict[str, Any]:
    """Run in the child process: cold + warm epoch, report peaks (kB) and the cache's size."""
    import torch

    from benchmarks.common import run_epoch
    from benchmarks.loader import data_module

    torch.set_num_threads(1)
    cache = Path(tempfile.mkdtemp(prefix="memcache-"))
    sampler = Sampler()
    sampler.start()
    result: dict[str, Any] = {}
    try:
        rss_before = _hwm_kb("self")
        for phase in ("cold", "warm"):
            dm = data_module(url, table, num_workers, str(cache), 128)
            start = time.perf_counter()
            rows = run_epoch(dm.train_dataloader())
            result[f"{phase}_s"] = round(time.perf_counter() - start, 4)
            result[f"{phase}_rows"] = rows
            dm.teardown("fit")
        time.sleep(sampler.interval * 3)
        sampler.stop.set()
        sampler.join()
        me = os.getpid()
        result.update(
            main_peak_kb=_hwm_kb("self"), main_before_kb=rss_before,
            main_anon_peak_kb=sampler.anon_peaks.get(me, 0),
            worker_peaks_kb=sorted(v for pid, v in sampler.peaks.items() if pid != me),
            worker_anon_peaks_kb=sorted(v for pid, v in sampler.anon_peaks.items() if pid != me),
            children_maxrss_kb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            cache_bytes=dir_bytes(cache),
        )
    finally:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
    return result


def measure_in_subprocess(url: str, table: str, num_workers: int, tmp: Path) -> dict[str, Any]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([sys.executable, "-m", "benchmarks.memory", url, table, str(num_workers)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description="one memory probe (used by benchmarks.run)")
    parser.add_argument("url")
    parser.add_argument("table")
    parser.add_argument("num_workers", type=int)
    args = parser.parse_args()
    print(json.dumps(probe(args.url, args.table, args.num_workers)))


if __name__ == "__main__":
    main()
