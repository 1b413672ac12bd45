"""Baseline: the samples already in memory — ``TensorDataset`` (ragged rows: a list Dataset) through a DataLoader.

The ceiling of "export to files/arrays and load them": no database and no disk at all. Shuffled, default collate,
workers not persistent (each epoch starts them), the same batch size and num_workers as the project's loader.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from benchmarks.common import Settings, consume, measure, record, run_epoch
from benchmarks.data import Samples
from benchmarks.naive import ragged_collate


class RaggedDataset(Dataset):
    """Token rows in memory. Each item is a fresh tensor over the stored array: handing a worker's batch to the
    main process moves the tensors' storage into shared memory, which would otherwise pin one shared-memory file
    per stored tensor for the life of the worker (and run out of file descriptors)."""

    def __init__(self, samples: Samples) -> None:
        self.features = list(samples.features)
        self.labels = samples.labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.features[i]), self.labels[i]


def dataset_of(samples: Samples) -> Dataset:
    if samples.ragged:
        return RaggedDataset(samples)
    return TensorDataset(torch.from_numpy(samples.features), torch.from_numpy(samples.labels))


def run(settings: Settings, samples: Samples) -> list[dict[str, Any]]:
    dataset = dataset_of(samples)
    out = []
    for num_workers in settings.workers:
        loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, num_workers=num_workers,
                            collate_fn=ragged_collate if samples.ragged else None)
        result = measure(lambda loader=loader: run_epoch(loader, settings.epoch_limit_s), settings.passes,
                         settings.warmup, expect=len(samples), partial_ok=True)
        out.append(record("baseline", "tensordataset", result, backend="memory", dataset=samples.name,
                          num_workers=num_workers))
        print(f"  TensorDataset {samples.name} nw={num_workers}: {result['rows_per_s']:,.0f} rows/s", flush=True)
    return out


def consume_only(settings: Settings, samples: Samples) -> dict[str, Any]:
    """The consuming step alone: batches already built in memory (shuffled), only ``consume`` timed. No loader can
    deliver an epoch faster than this on the consuming thread (num_workers=0)."""
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).numpy()
    labels = torch.from_numpy(samples.labels)
    batches: list[Any] = []
    for start in range(0, len(samples), settings.batch_size):
        rows = order[start : start + settings.batch_size]
        if samples.ragged:
            features: Any = [torch.from_numpy(samples.features[i]) for i in rows.tolist()]
        else:
            features = torch.from_numpy(samples.features[rows])
        batches.append((features, labels[rows]))

    def epoch() -> int:
        for batch in batches:
            consume(batch)
        return len(samples)

    result = measure(epoch, settings.passes, settings.warmup, expect=len(samples))
    print(f"  consume only {samples.name}: {result['rows_per_s']:,.0f} rows/s", flush=True)
    return record("baseline", "consume_only", result, backend="memory", dataset=samples.name, num_workers=0)
