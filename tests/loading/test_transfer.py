"""How a batch leaves a DataLoader worker: a ``(features, labels)`` pair travels as one shared-memory segment and
arrives as a plain tuple of the same tensors; anything else travels as it is."""

from __future__ import annotations

import io
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing  # noqa: F401  (registers torch's reductions with ForkingPickler, as the DataLoader does)

from lightning_dm8.loading.batches import RaggedBatch, for_transfer


def through_a_worker_queue(batch):
    buffer = io.BytesIO()
    ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(batch)
    return pickle.loads(buffer.getvalue())


@pytest.mark.parametrize("features, labels", [
    (torch.arange(2 * 3 * 4, dtype=torch.uint8).view(2, 3, 4), torch.tensor([7, 9])),
    (torch.randn(5, 3), torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5])),
    (torch.randint(0, 9, (3, 7), dtype=torch.int16), torch.tensor([1, 2, 3], dtype=torch.int32)),
    (torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)),
])
def test_a_pair_arrives_as_the_same_tensors_in_one_segment(features, labels) -> None:
    arrived = through_a_worker_queue(for_transfer((features, labels)))
    assert type(arrived) is tuple and len(arrived) == 2
    for sent, got in zip((features, labels), arrived, strict=True):
        assert got.dtype == sent.dtype and got.shape == sent.shape and torch.equal(got, sent)
    if features.numel():
        assert arrived[0].untyped_storage().data_ptr() == arrived[1].untyped_storage().data_ptr()


def test_other_batches_travel_as_they_are() -> None:
    ragged = RaggedBatch([torch.tensor([1, 2]), torch.tensor([3])])
    for batch in ((ragged, torch.tensor([0, 1])), {"x": torch.ones(2)}, [torch.ones(2), torch.ones(2)],
                  (torch.ones(4, 4).t(), torch.ones(4)), torch.ones(3)):
        assert for_transfer(batch) is batch
