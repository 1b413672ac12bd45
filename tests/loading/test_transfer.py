"""How a batch leaves a DataLoader worker: a ``(features, labels)`` pair travels as one shared-memory segment and
arrives as a plain tuple of the same tensors; so does a record batch (a dict of columns, with its labels), arriving
as the same structure; anything else travels as it is."""

from __future__ import annotations

import io
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing  # noqa: F401  (registers torch's reductions with ForkingPickler, as the DataLoader does)

from lightning_dm8.loading.batches import Padded, RaggedBatch, for_transfer


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
    for batch in ((ragged, torch.tensor([0, 1])), [torch.ones(2), torch.ones(2)],
                  (torch.ones(4, 4).t(), torch.ones(4)), torch.ones(3)):
        assert for_transfer(batch) is batch


def test_a_record_batch_arrives_as_the_same_structure_in_one_segment() -> None:
    features = {
        "image": torch.arange(2 * 3 * 4, dtype=torch.uint8).view(2, 3, 4),
        "tokens": RaggedBatch([torch.tensor([1, 2, 3], dtype=torch.int32), torch.tensor([], dtype=torch.int32)]),
        "padded": Padded(torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1])),
        "title": ["a", "é"], "raw": [b"x", b""], "price": torch.tensor([0.5, 1.5]),
    }
    labels = {"y": torch.tensor([4, 5]), "multi": torch.ones(2, 3)}
    for batch in ((features, labels), (features, labels["y"]), features):
        arrived = through_a_worker_queue(for_transfer(batch))
        assert type(arrived) is type(batch)
        got = arrived if isinstance(arrived, dict) else arrived[0]
        assert type(got["tokens"]) is RaggedBatch and type(got["padded"]) is Padded
        assert [t.tolist() for t in got["tokens"]] == [[1, 2, 3], []] and got["tokens"][0].dtype == torch.int32
        assert got["padded"].values.tolist() == [[1, 2], [3, 0]] and got["padded"].lengths.tolist() == [2, 1]
        assert got["title"] == ["a", "é"] and got["raw"] == [b"x", b""]
        assert torch.equal(got["image"], features["image"]) and torch.equal(got["price"], features["price"])
        storages = {t.untyped_storage().data_ptr() for t in (got["image"], got["price"], got["tokens"][0])}
        assert len(storages) == 1
        if isinstance(arrived, tuple):
            assert torch.equal(arrived[1]["y"] if isinstance(arrived[1], dict) else arrived[1], labels["y"])


def test_a_padded_batch_arrives_as_a_padded_pair_in_one_segment() -> None:
    padded = Padded(torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1]))
    arrived = through_a_worker_queue(for_transfer((padded, torch.tensor([7, 8]))))
    assert type(arrived) is tuple and type(arrived[0]) is Padded
    assert arrived[0].values.tolist() == [[1, 2], [3, 0]] and arrived[0].lengths.tolist() == [2, 1]
    assert arrived[1].tolist() == [7, 8]
    assert arrived[0].values.untyped_storage().data_ptr() == arrived[1].untyped_storage().data_ptr()
