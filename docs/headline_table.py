"""Prints the README's headline table from the last benchmark run (benchmarks/results/results.json): 50,000
CIFAR-sized rows, num_workers=0 and 2 side by side, each ratio against a baseline measured with the same number of
workers in the same run. A figure the run does not hold is shown as "–".

    python docs/headline_table.py [path/to/results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "results.json"
BACKENDS = (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"), ("mysql", "MariaDB"))
WORKERS = (0, 2)


def find(results: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    found = [r for r in results if all(r.get(k) == v for k, v in match.items())]
    return found[0] if found else None


def rate(results: list[dict[str, Any]], **match: Any) -> float | None:
    found = find(results, **match)
    return None if found is None else float(found["rows_per_s"])


def loader(results: list[dict[str, Any]], backend: str, workers: int, phase: str) -> float | None:
    return rate(results, section="loader", method="dm8", backend=backend, dataset="cifar", num_workers=workers,
                phase=phase, prefetch="on", subset=False)


def fastest_full_table(results: list[dict[str, Any]], backend: str) -> float | None:
    rates = [float(r["rows_per_s"]) for r in results
             if r.get("method") == "fullscan" and r.get("backend") == backend and r.get("dataset") == "cifar"]
    return max(rates) if rates else None


def ratio(a: float | None, b: float | None, digits: int = 2) -> str:
    return "–" if a is None or not b else f"{a / b:.{digits}f}×"


def number(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def checkpoint(results: list[dict[str, Any]], backend: str, op: str) -> str:
    method = {"save": "DM8CheckpointIO.save_checkpoint", "load": "DM8CheckpointIO.load_checkpoint"}[op]
    found = find(results, section="checkpoint", method=method, backend=backend)
    return "–" if found is None else f"{found['mb_per_s']:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    columns = [(backend, label, w) for backend, label in BACKENDS for w in WORKERS]
    memory = {w: rate(results, method="tensordataset", backend="memory", dataset="cifar", num_workers=w)
              for w in WORKERS}
    litdata = {w: rate(results, method="litdata", dataset="cifar", num_workers=w, phase="warm") for w in WORKERS}
    files = {op: find(results, section="checkpoint", method=f"torch.{op} local file") for op in ("save", "load")}
    local = " / ".join("–" if files[op] is None else f"{files[op]['mb_per_s']:,.0f}" for op in ("save", "load"))
    rows: list[tuple[str, list[str]]] = []
    cold = {c: loader(results, c[0], c[2], "cold") for c in columns}
    warm = {c: loader(results, c[0], c[2], "warm") for c in columns}
    naive = {c: rate(results, method="naive", backend=c[0], dataset="cifar", num_workers=c[2]) for c in columns}
    rows.append(("cold epoch (from the database, filling the cache), rows/s", [number(cold[c]) for c in columns]))
    rows.append(("… vs one SELECT per sample", [ratio(cold[c], naive[c]) for c in columns]))
    rows.append(("… vs the fastest full-table client", [ratio(cold[c], fastest_full_table(results, c[0]))
                                                        for c in columns]))
    rows.append(("warm epoch (LMDB cache), rows/s", [number(warm[c]) for c in columns]))
    rows.append((f"… vs an in-memory TensorDataset ({' / '.join(number(memory[w]) for w in WORKERS)} rows/s)",
                 [ratio(warm[c], memory[c[2]]) for c in columns]))
    rows.append((f"… vs litdata's warm StreamingDataset ({' / '.join(number(litdata[w]) for w in WORKERS)} rows/s)",
                 [ratio(warm[c], litdata[c[2]]) for c in columns]))
    rows.append((f"checkpoint save / load, 100 MB, MB/s (local file {local})",
                 [f"{checkpoint(results, c[0], 'save')} / {checkpoint(results, c[0], 'load')}" if c[2] == 0 else ""
                  for c in columns]))
    header = "| | " + " | ".join(f"{label}, {w}" for _, label, w in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    return "\n".join([header, rule] + [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows])


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print(table(json.loads(path.read_text())["results"]))


if __name__ == "__main__":
    main()
