"""Draws docs/data_path.svg: how rows travel from the database to the batches, in a cold and in a warm epoch.

    python docs/data_path.py        # rewrites docs/data_path.svg (deterministic: the same file every run)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).with_name("data_path.svg")
COLD, WARM, GREY = "#2b6cb0", "#2f855a", "#4a5568"


def box(ax, x: float, y: float, w: float, h: float, title: str, text: str, color: str) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", linewidth=1.6,
                                edgecolor=color, facecolor=color + "14"))
    ax.text(x + w / 2, y + h - 0.16, title, ha="center", va="top", fontsize=11, fontweight="bold", color=color)
    ax.text(x + w / 2, y + h / 2 - 0.14, text, ha="center", va="center", fontsize=8.5, color=GREY, linespacing=1.35)


def arrow(ax, start: tuple[float, float], end: tuple[float, float], color: str, label: str = "",
          offset: tuple[float, float] = (0.0, 0.12), style: str = "-") -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, linewidth=1.6, color=color,
                                 linestyle=style, shrinkA=2, shrinkB=2))
    if label:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], label, ha="center",
                va="bottom", fontsize=8, color=color)


def main() -> None:
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: small, searchable, diffable
    plt.rcParams["svg.hashsalt"] = "lightning_dm8"
    fig, ax = plt.subplots(figsize=(12.5, 4.8))
    ax.set(xlim=(0, 12.5), ylim=(0, 4.8))
    ax.axis("off")
    w, h = 2.4, 1.3
    cold_y, warm_y, out_y = 3.0, 0.55, 1.78
    db_x, blocks_x, prefetch_x, out_x = 0.1, 3.1, 6.1, 9.8

    box(ax, db_x, cold_y, w, h, "database", "dataset table, row_id 0..N-1\nDM8, PostgreSQL,\nMySQL, SQLite", COLD)
    box(ax, blocks_x, cold_y, w, h, "blocks", "one range query per block:\nrow_id BETWEEN lo AND hi", COLD)
    box(ax, prefetch_x, cold_y, w, h, "prefetch", "prefetch_blocks queries\nin flight on io_threads", COLD)
    box(ax, out_x, out_y, 2.6, h, "batches", "rows gathered straight into\n(features, labels), per rank\n"
        "and DataLoader worker", GREY)
    box(ax, prefetch_x, warm_y, w, h, "LMDB cache", "one entry per block, XXH3-64\nchecked; local disk, per node",
        WARM)

    arrow(ax, (db_x + w, cold_y + h / 2), (blocks_x, cold_y + h / 2), COLD, "SELECT", offset=(0.0, 0.08))
    arrow(ax, (blocks_x + w, cold_y + h / 2), (prefetch_x, cold_y + h / 2), COLD)
    arrow(ax, (prefetch_x + w, cold_y + h / 2), (out_x, out_y + h * 0.8), COLD,
          "cold: shuffled block order,\nrows mixed within windows", offset=(0.75, 0.3))
    arrow(ax, (prefetch_x + w / 2, cold_y), (prefetch_x + w / 2, warm_y + h), COLD,
          "cache writer thread\n(whole blocks)", offset=(-1.25, -0.25), style="--")
    arrow(ax, (prefetch_x + w, warm_y + h / 2), (out_x, out_y + h * 0.2), WARM,
          "warm: a full random\npermutation, no query", offset=(0.45, -0.78))

    ax.text(0.1, 4.62, "cold epoch (the first): read from the database, filling the cache", color=COLD,
            fontsize=10.5, fontweight="bold")
    ax.text(0.1, 0.18, "warm epoch (every later one, and later runs): read from the cache only", color=WARM,
            fontsize=10.5, fontweight="bold")
    ax.text(0.1, 1.45, "every order is a function of\n(seed, epoch, rank, worker):\neach row once per epoch\n"
            "across ranks and workers", color=GREY, fontsize=9, va="center")
    fig.savefig(OUT, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
