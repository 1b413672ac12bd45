"""Smoke test of the benchmark harness: ``--quick`` on SQLite with tiny sizes produces JSON, Markdown and PNGs
with the expected keys and positive throughputs (the figures themselves mean nothing at this size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import run  # the repository's top-level harness; conftest.py puts the root on sys.path


@pytest.mark.timeout(600)
def test_quick_run_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert run.main(["--out", str(out), "--quick", "--backends", "sqlite", "--workers", "0"]) == 0

    doc = json.loads((out / "results.json").read_text())
    for key in ("command", "machine", "config", "load_average", "results", "targets", "gaps", "plots", "elapsed_s"):
        assert key in doc, key
    assert doc["config"]["backends"] == ["sqlite"] and doc["config"]["quick"] is True
    assert len(doc["load_average"]["start"]) == 3 and len(doc["load_average"]["end"]) == 3
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu_model"]
    assert "sqlite" in doc["machine"]["servers"]

    results = doc["results"]
    sections = {r["section"] for r in results}
    assert {"build", "loader", "baseline", "checkpoint", "memory"} <= sections
    timed = [r for r in results if r["section"] in ("loader", "baseline", "build")]
    assert timed and all(r["rows_per_s"] > 0 and r["median_s"] > 0 for r in timed)
    loader = [r for r in results if r["section"] == "loader"]
    assert {(r["phase"], r["prefetch"]) for r in loader} >= {("cold", "on"), ("warm", "on"), ("nocache", "on"),
                                                             ("cold", "off"), ("nocache", "off")}
    assert {r["dataset"] for r in loader} == {"cifar", "agnews"}
    assert all(r["epoch_stats"]["rows_from_db"] + r["epoch_stats"]["rows_from_cache"] > 0 for r in loader)
    methods = {r["method"] for r in results if r["section"] == "baseline"}
    assert {"naive", "fullscan", "tensordataset"} <= methods
    assert "litdata" in methods or any("litdata" in g for g in doc["gaps"])
    checkpoints = [r for r in results if r["section"] == "checkpoint"]
    assert {r["op"] for r in checkpoints} == {"save", "load"}
    assert all(r["mb_per_s"] > 0 for r in checkpoints) or any("checkpoint" in g for g in doc["gaps"])
    memory = [r for r in results if r["section"] == "memory"]
    assert len(memory) == 2 and all(r["main_peak_mb"] > 0 and r["cache_mb"] > 0 for r in memory)

    targets = {t["target"] for t in doc["targets"]}
    assert any(t.startswith("cold >= 1.0x fastest full-table") for t in targets)
    assert any(t.startswith("warm >= 2x TensorDataset") for t in targets)
    assert any(t.startswith("peak RSS") for t in targets)
    assert all(t["ratio"] is None or t["ratio"] > 0 for t in doc["targets"])

    markdown = (out / "results.md").read_text()
    for heading in ("## Targets", "## Ratios vs baselines", "## Throughput (rows/s)", "## Full-table reads",
                    "## Checkpoint save/load", "## Memory and cache size"):
        assert heading in markdown, heading
    assert set(doc["plots"]) == {"throughput_vs_workers.png", "ratios_vs_targets.png"}
    for name in doc["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(["results.json", "results.md", *doc["plots"]])
