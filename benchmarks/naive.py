"""Baseline: what people write first — a map-style Dataset running one ``SELECT`` per sample, through a DataLoader.

Each DataLoader worker opens its own connection on first use. The sampler shuffles; batches are collated by the
DataLoader's default collate (ragged token rows: a list of tensors + a label tensor, as the project's loader gives).
The table and the samples are the project's dataset table; passes read ``naive_rows`` random samples of it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from benchmarks.common import Settings, measure, record, run_epoch
from benchmarks.drivers import connect, placeholder, quote


class PerSampleQuery(Dataset):
    """``SELECT features, label FROM t WHERE row_id = ?`` for every ``dataset[i]``."""

    def __init__(self, url: str, table: str, rows: int, shape: tuple[int, ...] | None, dtype: str) -> None:
        self.url, self.rows, self.shape, self.dtype = url, rows, shape, np.dtype(dtype)
        self.sql = f"SELECT features, label FROM {quote(url, table)} WHERE row_id = {placeholder(url)}"
        self._conn: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = connect(self.url), os.getpid()
        cur = self._conn.cursor()
        cur.execute(self.sql, (int(i),))
        features, label = cur.fetchone()
        cur.close()
        array = np.frombuffer(features, dtype=self.dtype)
        if self.shape is not None:
            array = array.reshape(self.shape)
        return torch.from_numpy(array.copy()), int(label)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_conn": None, "_pid": -1}


def ragged_collate(items: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    return [f for f, _ in items], torch.tensor([label for _, label in items])


def run(settings: Settings, backend: str, url: str, dataset: str, table: str, rows: int,
        shape: tuple[int, ...] | None, dtype: str) -> list[dict[str, Any]]:
    n = min(rows, settings.naive_rows)
    picked = np.random.default_rng(7).choice(rows, n, replace=False).tolist()
    base = PerSampleQuery(url, table, rows, shape, dtype)
    out = []
    for num_workers in settings.workers:
        loader = DataLoader(Subset(base, picked), batch_size=settings.batch_size, shuffle=True, num_workers=num_workers,
                            collate_fn=None if shape is not None else ragged_collate)
        result = measure(lambda loader=loader: run_epoch(loader, settings.epoch_limit_s), settings.passes,
                         settings.warmup, expect=n, partial_ok=True)
        out.append(record("baseline", "naive", result, backend=backend, dataset=dataset, num_workers=num_workers,
                          subset=n != rows))
        print(f"  naive {backend}/{dataset} nw={num_workers}: {result['rows_per_s']:,.0f} rows/s", flush=True)
    return out
