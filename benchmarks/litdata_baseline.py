"""Baseline: litdata — ``optimize()`` the same samples into chunk files, then ``StreamingDataset`` +
``StreamingDataLoader`` (shuffle, the same batch size and num_workers).

* ``cold``: the chunk files evicted from the page cache (``posix_fadvise(DONTNEED)``) and litdata's cache dir wiped
  before each pass.
* ``warm``: files resident; a new dataset and loader per pass (built outside the timing, as for the project's
  loader).

litdata hard-requires torchvision (whose PyPI build pulls a CUDA torch); its local optimize/stream path never imports
it, so it is installed with ``pip install --no-deps litdata`` plus its light dependencies (see the README).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Settings, measure, record, run_epoch
from benchmarks.data import Samples


class Sample:
    """``optimize``'s function: index -> ``{"x": features, "y": label}`` (a picklable object holding the arrays)."""

    def __init__(self, samples: Samples) -> None:
        self.features, self.labels = samples.features, samples.labels

    def __call__(self, i: int) -> dict[str, Any]:
        return {"x": self.features[i], "y": int(self.labels[i])}


def ragged_collate(items: list[dict[str, Any]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    return [torch.as_tensor(item["x"]) for item in items], torch.tensor([int(item["y"]) for item in items])


def _tuples(loader: Any, ragged: bool) -> Any:
    for batch in loader:
        yield batch if ragged else (batch["x"], batch["y"])


def evict(directory: Path) -> None:
    """Drop ``directory``'s files from the page cache (a cold read comes from disk, or the host's cache)."""
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def available() -> str | None:
    """None when litdata imports, else why not."""
    try:
        import litdata  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure is the gap to report
        return f"litdata cannot be imported ({type(exc).__name__}: {exc})"
    return None


def run(settings: Settings, samples: Samples) -> tuple[list[dict[str, Any]], list[str]]:
    problem = available()
    if problem:
        return [], [f"litdata ({samples.name}): {problem}"]
    import litdata as ld

    root = Path(settings.tmp) / f"litdata-{samples.name}"
    shutil.rmtree(root, ignore_errors=True)
    data_dir = root / "optimized"
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        ld.optimize(fn=Sample(samples), inputs=list(range(len(samples))), output_dir=str(data_dir),
                    chunk_bytes="64MB", num_workers=2, mode="overwrite", start_method="fork")
    optimize_s = time.perf_counter() - start
    out = [record("baseline", "litdata_optimize", {"rows": len(samples), "times_s": [round(optimize_s, 5)],
                                                    "median_s": round(optimize_s, 5),
                                                    "rows_per_s": round(len(samples) / optimize_s, 1)},
                  backend="files", dataset=samples.name, num_workers=2)]
    cache_dir = root / "cache"
    for num_workers in settings.workers:
        for phase in ("cold", "warm"):
            holder: dict[str, Any] = {}

            def prepare(phase: str = phase, num_workers: int = num_workers, holder: dict[str, Any] = holder) -> None:
                if phase == "cold":
                    shutil.rmtree(cache_dir, ignore_errors=True)
                    evict(data_dir)
                dataset = ld.StreamingDataset(str(data_dir), cache_dir=str(cache_dir), shuffle=True)
                holder["loader"] = ld.StreamingDataLoader(
                    dataset, batch_size=settings.batch_size, num_workers=num_workers,
                    collate_fn=ragged_collate if samples.ragged else None)

            def epoch(holder: dict[str, Any] = holder) -> int:
                return run_epoch(_tuples(holder["loader"], samples.ragged), settings.epoch_limit_s)

            result = measure(epoch, settings.passes, settings.warmup if phase == "warm" else 0, prepare,
                             expect=len(samples), partial_ok=True)
            out.append(record("baseline", "litdata", result, backend="files", dataset=samples.name,
                              num_workers=num_workers, phase=phase))
            print(f"  litdata {samples.name} nw={num_workers} {phase}: {result['rows_per_s']:,.0f} rows/s", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return out, []


