"""Writing the run: ``results.json`` (every figure), ``results.md`` (tables and ratios) and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.analysis import best_fullscan, loader_rate, pick, rate, ratio_rows

Record = dict[str, Any]


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}x"


def markdown(doc: dict[str, Any]) -> str:
    results: list[Record] = doc["results"]
    backends, datasets, workers = doc["config"]["backends"], doc["config"]["datasets"], doc["config"]["workers"]
    lines = _header_lines(doc)
    lines += _target_lines(doc["targets"])
    lines += _ratio_lines(results, backends, datasets, workers)
    lines += _throughput_lines(doc["config"], results, backends, datasets, workers)
    lines += _main_thread_lines(results)
    lines += _fullscan_lines(results)
    lines += _checkpoint_lines(results)
    lines += _memory_lines(results)
    lines += _table_size_lines(doc.get("table_sizes"))
    lines += ["", "## Not measured / notes", ""]
    lines += [f"- {g}" for g in doc["gaps"]] or ["- nothing left out"]
    lines += [f"- {n}" for n in doc.get("notes", [])]
    return "\n".join(lines) + "\n"


def _header_lines(doc: dict[str, Any]) -> list[str]:
    """Title, command, machine, load and how each figure is measured."""
    m = doc["machine"]
    return [
        "# lightning_dm8 benchmark results", "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; Python {m['python']}, "
        f"torch {m['torch']} ({doc['config']['torch_threads']} intra-op thread(s) in the consuming process); "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + "  ",
        f"Load average (1/5/15 min) at start {doc['load_average']['start']}, at end {doc['load_average']['end']}; "
        f"run took {doc['elapsed_s']:.0f} s.  ",
        f"Each figure: median of {doc['config']['passes']} pass(es) after {doc['config']['warmup']} warm-up pass(es); "
        f"batch {doc['config']['batch_size']}; rows/s = samples delivered (and consumed) per second.",
    ]


def _target_lines(targets: list[Record]) -> list[str]:
    lines = ["", "## Targets", "",
             "| target | backend | data | ratio | goal | met | how |", "|---|---|---|---:|---:|---|---|"]
    for t in targets:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        goal = f"≤ {t['goal']}x" if t["target"].startswith("peak RSS") else f"≥ {t['goal']}x"
        lines.append(f"| {t['target']} | {t['backend']} | {t['dataset']} | {_x(t['ratio'])} | {goal} | {met} | "
                     f"{t['how']} |")
    return lines


def _ratio_lines(results: list[Record], backends: list[str], datasets: list[str], workers: list[int]) -> list[str]:
    lines = ["", "## Ratios vs baselines (same num_workers)", "",
             "| backend | data | workers | cold / fastest full-table | cold / naive | warm / TensorDataset | "
             "warm / litdata warm | cold prefetch on / off |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in ratio_rows(results, backends, datasets, workers):
        lines.append(f"| {r['backend']} | {r['dataset']} | {r['num_workers']} | {_x(r['cold_vs_fullscan'])} | "
                     f"{_x(r['cold_vs_naive'])} | {_x(r['warm_vs_tensordataset'])} | {_x(r['warm_vs_litdata_warm'])} | "
                     f"{_x(r['prefetch_on_vs_off_cold'])} |")
    return lines


def _throughput_lines(config: dict[str, Any], results: list[Record], backends: list[str], datasets: list[str],
                      workers: list[int]) -> list[str]:
    lines = ["", "## Throughput (rows/s)", "",
             "DM8 = the project's `DM8DataModule.train_dataloader()`. *cold*: fresh empty cache_dir; *warm*: filled "
             "LMDB cache; *no cache*: `cache_dir=None`. Prefetch off = `prefetch_blocks=0, block_size=1` "
             f"(on a {config['noprefetch_rows']:,}-row table of the same samples); naive = one SELECT per "
             f"sample ({config['naive_rows']:,} random samples per pass). TensorDataset and litdata do not "
             "depend on the backend.", "",
             "| backend | data | workers | cold | warm | no cache | cold, prefetch off | warm, prefetch off | "
             "no cache, prefetch off | naive | TensorDataset | litdata cold | litdata warm |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for backend in backends:
        for dataset in datasets:
            for nw in workers:
                cells = [loader_rate(results, backend, dataset, nw, p, f) for f in ("on", "off")
                         for p in ("cold", "warm", "nocache")]
                lines.append(
                    f"| {backend} | {dataset} | {nw} | " + " | ".join(_n(c) for c in cells) + " | "
                    + _n(rate(results, method="naive", backend=backend, dataset=dataset, num_workers=nw)) + " | "
                    + _n(rate(results, method="tensordataset", dataset=dataset, num_workers=nw)) + " | "
                    + _n(rate(results, method="litdata", dataset=dataset, num_workers=nw, phase="cold")) + " | "
                    + _n(rate(results, method="litdata", dataset=dataset, num_workers=nw, phase="warm")) + " |")
    return lines


def _main_thread_lines(results: list[Record]) -> list[str]:
    """What bounds an epoch on the consuming thread: the consuming step alone, and the share of a loader epoch
    (num_workers=0) spent waiting for data."""
    lines = ["", "## The consuming thread (num_workers=0)", "",
             "*consume only*: the batches already in memory, only the consuming step timed (the ceiling for any loader "
             "at num_workers=0). *data wait*: one more epoch, profiled: the share of it the consuming thread spent "
             "blocked waiting for a prefetched block or the cache writer.", "",
             "| backend | data | phase | epoch s (profiled) | data wait s | data wait share |",
             "|---|---|---|---:|---:|---:|"]
    for r in pick(results, method="consume_only"):
        lines.append(f"| memory | {r['dataset']} | consume only: {_n(r['rows_per_s'])} rows/s | {r['median_s']:.3f} "
                     f"| – | – |")
    for r in pick(results, section="loader", num_workers=0, prefetch="on"):
        m = r.get("main_thread")
        if m:
            lines.append(f"| {r['backend']} | {r['dataset']} | {r['phase']} | {m['epoch_s']:.3f} | {m['wait_s']:.3f} "
                         f"| {m['wait_share']:.0%} |")
    return lines


def _fullscan_lines(results: list[Record]) -> list[str]:
    """Full-table reads, with the table build and the litdata optimize step for scale."""
    lines = ["", "## Full-table reads into numpy (rows/s)", "", "| backend | data | client | rows/s | median s |",
             "|---|---|---|---:|---:|"]
    for r in pick(results, method="fullscan"):
        lines.append(f"| {r['backend']} | {r['dataset']} | {r['client']} | {_n(r['rows_per_s'])} | "
                     f"{r['median_s']:.3f} |")
    for r in pick(results, method="write_arrays"):
        lines.append(f"| {r['backend']} | {r['dataset']} | *write_arrays (building the table)* | "
                     f"{_n(r['rows_per_s'])} | {r['median_s']:.3f} |")
    for r in pick(results, method="litdata_optimize"):
        lines.append(f"| files | {r['dataset']} | *litdata optimize (2 workers)* | {_n(r['rows_per_s'])} | "
                     f"{r['median_s']:.3f} |")
    return lines


def _checkpoint_lines(results: list[Record]) -> list[str]:
    ck = pick(results, section="checkpoint")
    if not ck:
        return []
    size = ck[0]["bytes"] / 1e6
    lines = ["", f"## Checkpoint save/load ({size:.0f} MB serialized)", "",
             "| backend | method | MB/s | median s |", "|---|---|---:|---:|"]
    for r in ck:
        lines.append(f"| {r['backend']} | {r['method']} | {_n(r['mb_per_s'], 1)} | {r['median_s']:.3f} |")
    return lines


def _memory_lines(results: list[Record]) -> list[str]:
    mem = pick(results, section="memory")
    if not mem:
        return []
    lines = ["", "## Memory and cache size", "",
             "Peak RSS (VmHWM) of the main process and of the largest DataLoader worker over one cold + one warm "
             "epoch, each case in a fresh process, and the peak of their anonymous memory (RssAnon: RSS less "
             "the mapped LMDB file pages, which are page cache); cache = LMDB files' allocated size after both "
             "epochs.", "",
             "| backend | rows | workers | main peak MB | main anon MB | worker peak MB | worker anon MB | "
             "cache MB | raw data MB | table MB | cold s | warm s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in mem:
        lines.append(f"| {r['backend']} | {r['rows']:,} | {r['num_workers']} | {_n(r['main_peak_mb'])} | "
                     f"{_n(r.get('main_anon_peak_mb'))} | {_n(r.get('worker_peak_mb'))} | "
                     f"{_n(r.get('worker_anon_peak_mb'))} | {_n(r['cache_mb'])} | {_n(r['raw_mb'])} | "
                     f"{_n(r.get('table_mb'))} | {r['cold_s']:.2f} | {r['warm_s']:.2f} |")
    return lines


def _table_size_lines(table_sizes: list[Record] | None) -> list[str]:
    if not table_sizes:
        return []
    lines = ["", "## Data size", "", "| backend | data | rows | raw MB | table MB in the database |",
             "|---|---|---:|---:|---:|"]
    for t in table_sizes:
        lines.append(f"| {t['backend']} | {t['dataset']} | {t['rows']:,} | {t['raw_mb']:.1f} | "
                     f"{_n(t['table_mb'], 1)} |")
    return lines


def plots(doc: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results: list[Record] = doc["results"]
    backends, datasets, workers = doc["config"]["backends"], doc["config"]["datasets"], doc["config"]["workers"]
    made = []
    fig, axes = plt.subplots(len(datasets), len(backends), figsize=(4.2 * len(backends), 3.6 * len(datasets)),
                             squeeze=False, sharex=True)
    series = [
        ("DM8 cold, prefetch on", dict(method="dm8", phase="cold", prefetch="on"), "C0", "-"),
        ("DM8 cold, prefetch off", dict(method="dm8", phase="cold", prefetch="off"), "C0", ":"),
        ("DM8 warm (LMDB)", dict(method="dm8", phase="warm", prefetch="on"), "C1", "-"),
        ("DM8 no cache", dict(method="dm8", phase="nocache", prefetch="on"), "C2", "-"),
        ("naive SELECT per sample", dict(method="naive"), "C3", "--"),
        ("TensorDataset (memory)", dict(method="tensordataset"), "C4", "--"),
        ("litdata warm", dict(method="litdata", phase="warm"), "C5", "--"),
    ]
    for i, dataset in enumerate(datasets):
        for j, backend in enumerate(backends):
            ax = axes[i][j]
            for label, where, color, style in series:
                scope = {} if where["method"] in ("tensordataset", "litdata") else {"backend": backend}
                ys = [rate(results, dataset=dataset, num_workers=nw, **scope, **where) for nw in workers]
                pts = [(nw, y) for nw, y in zip(workers, ys, strict=True) if y]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, marker="o", label=label)
            _, full = best_fullscan(results, backend, dataset)
            if full:
                ax.axhline(full, color="k", lw=0.8, ls="-.", label="fastest full-table read")
            ax.set_yscale("log")
            ax.set_title(f"{backend} — {dataset}")
            ax.set_xticks(workers)
            ax.grid(alpha=0.3)
            if i == len(datasets) - 1:
                ax.set_xlabel("num_workers")
            if j == 0:
                ax.set_ylabel("rows/s (log)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = out / "throughput_vs_workers.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    made.append(path.name)

    targets = [t for t in doc["targets"] if t["ratio"] is not None and not t["target"].startswith("peak RSS")]
    if targets:
        fig, ax = plt.subplots(figsize=(9, 0.32 * len(targets) + 1.2))
        names = [f"{t['target'].split(' (')[0]} — {t['backend']}/{t['dataset']}" for t in targets]
        values = [t["ratio"] / t["goal"] for t in targets]
        colors = ["C2" if t["met"] else "C3" for t in targets]
        ax.barh(range(len(targets)), values, color=colors)
        ax.axvline(1.0, color="k", lw=1)
        ax.set_xscale("log")
        ax.set_yticks(range(len(targets)))
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("measured ratio / target ratio (≥ 1 = target met)")
        fig.tight_layout()
        path = out / "ratios_vs_targets.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path.name)
    return made


def write(doc: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc["plots"] = plots(doc, out)
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (out / "results.md").write_text(markdown(doc))
