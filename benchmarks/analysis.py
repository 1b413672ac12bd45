"""Ratios against the baselines and the targets, computed from the recorded figures (nothing here is measured)."""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


def pick(results: list[Record], **where: Any) -> list[Record]:
    return [r for r in results if all(r.get(k) == v for k, v in where.items())]


def rate(results: list[Record], **where: Any) -> float | None:
    found = [r["rows_per_s"] for r in pick(results, **where) if r.get("rows_per_s")]
    return max(found) if found else None


def best_fullscan(results: list[Record], backend: str, dataset: str) -> tuple[str | None, float | None]:
    found = pick(results, section="baseline", method="fullscan", backend=backend, dataset=dataset)
    if not found:
        return None, None
    top = max(found, key=lambda r: r["rows_per_s"])
    return top["client"], top["rows_per_s"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def loader_rate(
    results: list[Record], backend: str, dataset: str, nw: int, phase: str, prefetch: str = "on",
) -> float | None:
    return rate(results, section="loader", method="dm8", backend=backend, dataset=dataset, num_workers=nw,
                phase=phase, prefetch=prefetch)


def ratio_rows(results: list[Record], backends: list[str], datasets: list[str], workers: list[int]) -> list[Record]:
    """Per backend, dataset and num_workers: the project's loader against each baseline."""
    rows = []
    for backend in backends:
        for dataset in datasets:
            client, full = best_fullscan(results, backend, dataset)
            for nw in workers:
                cold = loader_rate(results, backend, dataset, nw, "cold")
                warm = loader_rate(results, backend, dataset, nw, "warm")
                rows.append({
                    "backend": backend, "dataset": dataset, "num_workers": nw,
                    "cold_vs_fullscan": _ratio(cold, full), "fullscan_client": client,
                    "cold_vs_naive": _ratio(cold, rate(results, method="naive", backend=backend, dataset=dataset,
                                                       num_workers=nw)),
                    "warm_vs_tensordataset": _ratio(warm, rate(results, method="tensordataset", dataset=dataset,
                                                               num_workers=nw)),
                    "warm_vs_litdata_warm": _ratio(warm, rate(results, method="litdata", dataset=dataset,
                                                              num_workers=nw, phase="warm")),
                    "prefetch_on_vs_off_cold": _ratio(cold, loader_rate(results, backend, dataset, nw, "cold", "off")),
                })
    return rows


def _values(rows: list[Record], key: str, backend: str, dataset: str) -> dict[int, float]:
    return {r["num_workers"]: r[key] for r in rows if r["backend"] == backend and r["dataset"] == dataset
            and r[key] is not None}


def targets(results: list[Record], backends: list[str], datasets: list[str], workers: list[int]) -> list[Record]:
    """Each target, per backend and dataset: the headline ratio, how it was formed, and met or missed."""
    rows = ratio_rows(results, backends, datasets, workers)
    out: list[Record] = []

    def add(name: str, backend: str, dataset: str, value: float | None, goal: float, how: str) -> None:
        out.append({"target": name, "backend": backend, "dataset": dataset, "ratio": value, "goal": goal,
                     "how": how, "met": None if value is None else value >= goal})

    for backend in backends:
        for dataset in datasets:
            client, full = best_fullscan(results, backend, dataset)
            colds = {nw: loader_rate(results, backend, dataset, nw, "cold") for nw in workers}
            colds = {k: v for k, v in colds.items() if v}
            if colds and full:
                nw = max(colds, key=colds.__getitem__)
                add("cold >= 1.0x fastest full-table client", backend, dataset, _ratio(colds[nw], full), 1.0,
                    f"best cold (num_workers={nw}) / {client}")
            for key, name, goal in (("cold_vs_naive", "cold >= 25x naive", 25.0),
                                    ("warm_vs_tensordataset", "warm >= 2x TensorDataset (same num_workers)", 2.0),
                                    ("warm_vs_litdata_warm", "warm >= 5x litdata warm (same num_workers)", 5.0)):
                values = _values(rows, key, backend, dataset)
                if values:
                    low = min(values, key=values.__getitem__)
                    detail = ", ".join(f"nw={k}: {v:g}" for k, v in sorted(values.items()))
                    add(name, backend, dataset, values[low], goal, f"lowest over num_workers ({detail})")
            off = {nw: loader_rate(results, backend, dataset, nw, "cold", "off") for nw in workers}
            on_off = _values(rows, "prefetch_on_vs_off_cold", backend, dataset)
            if 0 in on_off:
                add("prefetch helps (cold, prefetch on / off)", backend, dataset, on_off[0], 1.5,
                    "num_workers=0, blocks of 256 with 4 in flight vs one query per row")
            if off.get(0) and off.get(max(workers)) and max(workers) > 0:
                add("workers help where the DB is the bottleneck (cold, prefetch off)", backend, dataset,
                    _ratio(off[max(workers)], off[0]), 1.5, f"num_workers={max(workers)} / num_workers=0")
    for r in pick(results, section="checkpoint"):
        if r["backend"] == "file":
            continue
        local = pick(results, section="checkpoint", backend="file", op=r["op"])
        if local:
            add(f"checkpoint {r['op']} >= 0.5x local file", r["backend"], "checkpoint",
                _ratio(r["mb_per_s"], local[0]["mb_per_s"]), 0.5, f"{r['method']} MB/s / torch.{r['op']} MB/s")
    out.extend(memory_targets(results))
    return out


def memory_targets(results: list[Record]) -> list[Record]:
    out = []
    found = pick(results, section="memory")
    for key in sorted({(r["backend"], r["num_workers"]) for r in found}):
        cases = sorted(pick(found, backend=key[0], num_workers=key[1]), key=lambda r: r["rows"])
        if len(cases) < 2:
            continue
        small, large = cases[0], cases[-1]
        for what, field in (("per worker", "worker_peak_mb"), ("main process", "main_peak_mb"),
                            ("per worker, anonymous", "worker_anon_peak_mb"),
                            ("main process, anonymous", "main_anon_peak_mb")):
            a, b = small.get(field), large.get(field)
            if not a or not b:
                continue
            growth = round(b / a - 1, 3)
            out.append({"target": f"peak RSS {what} within 10% ({small['rows']:,} -> {large['rows']:,} rows)",
                        "backend": key[0], "dataset": f"cifar, num_workers={key[1]}", "ratio": round(b / a, 3),
                        "goal": 1.10, "how": f"{a:.0f} MB -> {b:.0f} MB ({growth:+.1%})", "met": b / a <= 1.10})
    return out
