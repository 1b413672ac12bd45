"""Record datasets through DM8DataModule: batches of named columns (a dict, with a tensor or a dict of targets) equal
to the same data in memory, from the database and from the cache, in worker processes or not; padding of
variable-length columns; per-column and whole-sample transforms; collate functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lightning_dm8
from lightning_dm8 import InvalidInputError
from lightning_dm8.loading.batches import Padded, RaggedBatch
from loading.record_rows import (
    assert_same,
    epoch,
    expected_features,
    expected_targets,
    record_columns,
    write_record,
)
from loading.support import assert_exactly_once, make_dm

N = 150
OPTIONS = {"batch_size": 16, "block_size": 32}


@pytest.fixture(scope="module")
def columns() -> tuple[dict[str, Any], dict[str, Any]]:
    return record_columns(N)


def ids_of(batch: Any) -> np.ndarray:
    return batch[1]["y"].numpy()


def assert_like_memory(batches: list[Any], features: dict[str, Any], targets: dict[str, Any],
                       pad_value: float | None = None) -> np.ndarray:
    """Every batch equals the batch of the same rows built from the in-memory columns; returns the rows delivered."""
    for k, batch in enumerate(batches):
        ids = ids_of(batch)
        assert_same(batch, (expected_features(features, ids, pad_value), expected_targets(targets, ids)),
                    f"batch {k}")
    return np.concatenate([ids_of(b) for b in batches])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_record_batches_equal_the_data_in_memory_cold_and_warm(db_url, table_name, tmp_path, columns,
                                                               num_workers) -> None:
    features, targets = columns
    write_record(db_url, table_name, features, targets)
    dm = make_dm(db_url, table_name, tmp_path / "cache", num_workers=num_workers, shuffle=True, **OPTIONS)
    loader = dm.train_dataloader()
    cold = epoch(loader)
    assert dm.epoch_stats["train"].rows_from_db >= N - OPTIONS["block_size"]  # workers may share an edge block
    warm = epoch(loader)
    assert loader.mode == "warm" and dm.epoch_stats["train"].queries == 0
    for batches in (cold, warm):
        assert_exactly_once(assert_like_memory(batches, features, targets), N)
    assert isinstance(cold[0][0]["tokens"], RaggedBatch) and cold[0][0]["title"][0].startswith("title")
    assert {k: v.dtype for k, v in cold[0][0].items() if isinstance(v, torch.Tensor)} == {
        "image": torch.uint8, "price": torch.float32, "count": torch.int64, "ok": torch.bool}
    dm.teardown("fit")


def test_unshuffled_cold_and_warm_epochs_are_the_same_batches(tmp_path, columns) -> None:
    features, targets = columns
    url = f"sqlite:///{tmp_path / 'r.db'}"
    write_record(url, "rec", features, targets)
    dm = make_dm(url, "rec", tmp_path / "cache", shuffle=False, **OPTIONS)
    loader = dm.train_dataloader()
    cold, warm = epoch(loader), epoch(loader)
    assert dm.epoch_stats["train"].rows_from_cache == N
    assert_same(warm, cold)
    np.testing.assert_array_equal(assert_like_memory(cold, features, targets), np.arange(N))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_pad_varlen_pads_to_the_longest_row(tmp_path, columns, num_workers) -> None:
    features, targets = columns
    url = f"sqlite:///{tmp_path / 'r.db'}"
    write_record(url, "rec", features, targets)
    dm = make_dm(url, "rec", tmp_path / "cache", pad_varlen=True, pad_value=-1, num_workers=num_workers, **OPTIONS)
    loader = dm.train_dataloader()
    for batches in (epoch(loader), epoch(loader)):
        assert_exactly_once(assert_like_memory(batches, features, targets, pad_value=-1), N)
        assert all(isinstance(b[0]["tokens"], Padded) for b in batches)
    assert dm.hparams["pad_varlen"] is True and dm.hparams["pad_value"] == -1


def test_pad_varlen_applies_to_a_single_varlen_feature(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    rows = [np.arange(i % 5, dtype=np.int64) + i for i in range(40)]
    lightning_dm8.write_arrays(url, "tokens", rows, np.arange(40), progress=False)
    (padded, lengths), labels = next(iter(make_dm(url, "tokens", pad_varlen=True, pad_value=7, shuffle=False,
                                                  batch_size=8, block_size=16).train_dataloader()))
    assert lengths.tolist() == [0, 1, 2, 3, 4, 0, 1, 2] and padded.shape == (8, 4) and labels.tolist() == list(range(8))
    for row, (values, n) in enumerate(zip(padded.tolist(), lengths.tolist(), strict=True)):
        assert values == rows[row].tolist() + [7] * (4 - n)
    plain, _ = next(iter(make_dm(url, "tokens", shuffle=False, batch_size=8, block_size=16).train_dataloader()))
    assert isinstance(plain, RaggedBatch) and [t.tolist() for t in plain] == [r.tolist() for r in rows[:8]]


def test_one_target_is_a_tensor_and_no_target_a_dict_alone(tmp_path, columns) -> None:
    features, targets = columns
    url = f"sqlite:///{tmp_path / 'r.db'}"
    write_record(url, "one", features, {"multi": targets["multi"]})
    write_record(url, "none", features, None)
    x, y = next(iter(make_dm(url, "one", shuffle=False, **OPTIONS).train_dataloader()))
    assert_same(y, torch.from_numpy(targets["multi"][:16]))
    assert_same(x, expected_features(features, np.arange(16)))
    alone = next(iter(make_dm(url, "none", shuffle=False, **OPTIONS).train_dataloader()))
    assert_same(alone, expected_features(features, np.arange(16)))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_transform_per_column_applies_to_that_column(tmp_path, columns, num_workers) -> None:
    features, targets = columns
    url = f"sqlite:///{tmp_path / 'r.db'}"
    write_record(url, "rec", features, targets)
    dm = make_dm(url, "rec", tmp_path / "cache", num_workers=num_workers,
                 train_transform={"price": "loading.record_rows.negate", "tokens": lambda t: t[:2]}, **OPTIONS)
    loader = dm.train_dataloader()
    for batches in (epoch(loader), epoch(loader)):
        for x, y in batches:
            ids = y["y"].numpy()
            expected = expected_features(features, ids)
            expected["price"] = torch.tensor([-features["price"][i] for i in ids], dtype=torch.float32)
            expected["tokens"] = [torch.from_numpy(features["tokens"][i][:2]) for i in ids]
            assert_same(x, expected)
            assert_same(y, expected_targets(targets, ids))


def test_a_plain_transform_gets_the_sample_dict(tmp_path, columns) -> None:
    features, targets = columns
    url = f"sqlite:///{tmp_path / 'r.db'}"
    write_record(url, "rec", features, targets)
    x, y = next(iter(make_dm(url, "rec", shuffle=False, transform="loading.record_rows.title_length",
                             **OPTIONS).train_dataloader()))
    assert x["title_length"].tolist() == [len(features["title"][i]) for i in range(16)]
    assert x["title"] == features["title"][:16] and x["count"].dtype == torch.int64
    assert x["price"].dtype == torch.float32 and x["ok"].dtype == torch.bool
    assert torch.equal(x["image"], torch.from_numpy(features["image"][:16]))
    assert_same(y, expected_targets(targets, np.arange(16)))


def test_collate_fn_gets_sample_dicts_and_labels(tmp_path, columns) -> None:
    features, targets = columns
    url = f"sqlite:///{tmp_path / 'r.db'}"
    write_record(url, "rec", features, targets)
    seen: list[Any] = []

    def collate(items: list[Any]) -> int:
        seen.extend(items)
        return len(items)

    assert next(iter(make_dm(url, "rec", shuffle=False, collate_fn=collate, **OPTIONS).train_dataloader())) == 16
    sample, label = seen[3]
    assert sorted(sample) == sorted(features) and label["y"] == 3
    assert np.array_equal(label["multi"], targets["multi"][3])
    assert sample["title"] == features["title"][3] and sample["count"] == features["count"][3]
    assert torch.equal(sample["image"], torch.from_numpy(features["image"][3]))
    assert torch.equal(sample["tokens"], torch.from_numpy(features["tokens"][3]))


def test_transform_errors_name_the_columns(tmp_path: Path, columns) -> None:
    features, targets = columns
    url = f"sqlite:///{tmp_path / 'r.db'}"
    write_record(url, "rec", features, targets)
    lightning_dm8.write_arrays(url, "single", np.ones((4, 2)), np.arange(4), progress=False)
    with pytest.raises(InvalidInputError, match=r"the transform names column\(s\) \['nope'\] that 'rec' does not "
                                                r"read; the columns read are \['image', 'tokens'"):
        make_dm(url, "rec", transform={"nope": abs}).train_dataloader()
    with pytest.raises(ValueError, match=r"transform\['price'\] 'nowhere' is not an importable path"):
        make_dm(url, "rec", transform={"price": "nowhere"})
    with pytest.raises(InvalidInputError, match=r"a transform per column \(\['x'\]\) needs a dataset of several "
                                                r"columns; 'single' has a single feature"):
        make_dm(url, "single", transform={"x": abs}).train_dataloader()
