"""``DM8DataModule(columns=[...])``: only the selected feature columns are read (fewer bytes from the database), the
cache of a selection is its own (a narrower cache is never served for a wider selection), unknown columns are
refused naming the dataset's, and a LightningCLI config selects columns and transforms them per column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lightning_dm8
from lightning_dm8 import InvalidInputError
from lightning_dm8.cli.lightning import lightning_cli
from loading.record_rows import assert_same, epoch, expected_features, negate, write_record
from loading.support import assert_exactly_once, make_dm

N = 120
OPTIONS = {"batch_size": 16, "block_size": 32}


def products(n: int = N) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    return {"image": rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
            "title": [f"product number {i}" for i in range(n)], "price": rng.random(n) * 100}


def delivered(dm: Any) -> list[Any]:
    batches = epoch(dm.train_dataloader())
    dm.teardown("fit")
    return batches


@pytest.mark.parametrize("num_workers", [0, 2])
def test_selecting_a_column_reads_a_fraction_of_the_bytes(db_url, table_name, num_workers, capsys) -> None:
    features = products()
    write_record(db_url, table_name, features, {"y": np.arange(N)})
    read: dict[str, float] = {}
    for name, columns in (("all", None), ("price", ["price"])):
        dm = make_dm(db_url, table_name, columns=columns, num_workers=num_workers, shuffle=False, **OPTIONS)
        batches = delivered(dm)
        assert_exactly_once(np.concatenate([y.numpy() for _, y in batches]), N)
        wanted = features if columns is None else {c: features[c] for c in columns}
        for x, y in batches:
            assert_same(x, expected_features(wanted, y.numpy()))
        read[name] = dm.epoch_stats["train"].bytes_from_db
        if num_workers == 0:  # the reader's own count (per process) agrees with the epoch's
            assert dm.datasets["train"].reader.bytes_read == read[name]
    assert read["price"] < 0.1 * read["all"]
    with capsys.disabled():
        print(f"\n[bytes read, {db_url.split(':')[0]}, {N} rows, workers={num_workers}] all columns: "
              f"{read['all']:.0f}, columns=['price']: {read['price']:.0f} ({100 * read['price'] / read['all']:.2f}%)")


def test_a_narrower_cache_is_never_served_for_a_wider_selection(db_url, table_name, tmp_path) -> None:
    features = {"a": np.arange(N) * 2.0, "b": np.arange(N) % 7, "c": [f"c{i}" for i in range(N)]}
    write_record(db_url, table_name, features, {"y": np.arange(N)})
    cache = tmp_path / "cache"

    def run(columns: list[str]) -> tuple[Any, list[Any]]:
        dm = make_dm(db_url, table_name, cache, columns=columns, **OPTIONS)
        return dm, delivered(dm)

    dm, _ = run(["a"])
    assert dm.epoch_stats["train"].rows_from_db == N  # fills the cache of ["a"]
    dm, _ = run(["a"])
    assert dm.epoch_stats["train"].queries == 0  # and serves it
    for columns in (["a", "b"], ["b", "a"]):
        dm, batches = run(columns)
        expected_stats = (N, 0) if columns == ["a", "b"] else (0, N)  # ["b", "a"]: the cache ["a", "b"] filled
        assert (dm.epoch_stats["train"].rows_from_db, dm.epoch_stats["train"].rows_from_cache) == expected_stats
        assert_exactly_once(np.concatenate([y.numpy() for _, y in batches]), N)
        for x, y in batches:
            assert_same(x, expected_features({"a": features["a"], "b": features["b"]}, y.numpy()))
    assert dm.hparams["columns"] == ["b", "a"]


def test_unknown_columns_are_refused_naming_the_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    write_record(url, "products", products(8), {"y": np.arange(8)})
    lightning_dm8.write_arrays(url, "single", np.ones((8, 2)), np.arange(8), progress=False)
    with pytest.raises(InvalidInputError, match=r"DM8DataModule: dataset 'products': cannot select columns "
                                                r"\['price', 'colour'\]: it has no feature column \['colour'\]; its "
                                                r"feature columns are \['image', 'title', 'price'\]"):
        make_dm(url, "products", columns=["price", "colour"]).setup("fit")
    with pytest.raises(InvalidInputError, match=r"dataset 'single': columns=\['x'\] selects columns of a "
                                                r"multi-column dataset"):
        make_dm(url, "single", columns=["x"]).setup("fit")


def test_changing_columns_builds_a_new_dataset(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    write_record(url, "products", products(8), {"y": np.arange(8)})
    dm = make_dm(url, "products", columns=["price"], batch_size=8)
    x, _ = next(iter(dm.train_dataloader()))
    assert list(x) == ["price"]
    dm.columns = ["title", "price"]
    x, _ = next(iter(dm.train_dataloader()))
    assert list(x) == ["title", "price"]


def test_a_yaml_config_selects_columns_and_transforms_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    features = products(40)
    write_record(url, "products", features, {"y": np.arange(40)})
    config = tmp_path / "config.yaml"
    config.write_text(
        "model:\n  class_path: lightning.pytorch.demos.boring_classes.BoringModel\n"
        f"data:\n  url: {url}\n  train_table: products\n  batch_size: 8\n  cache_dir: null\n  shuffle: false\n"
        "  progress: false\n  columns: [image, price]\n  transform: {price: loading.record_rows.negate}\n"
    )
    cli = lightning_cli(["--config", str(config)], run=False)
    dm = cli.datamodule
    assert dm.columns == ["image", "price"] and dm.transform == {"price": negate}
    saved = cli.parser.dump(cli.config)  # the config a run saves writes them back as they were given
    assert "columns:\n  - image\n  - price" in saved and "transform:\n    price: loading.record_rows.negate" in saved
    x, y = next(iter(dm.train_dataloader()))
    assert list(x) == ["image", "price"] and y.tolist() == list(range(8))
    assert torch.equal(x["image"], torch.from_numpy(features["image"][:8]))
    assert torch.equal(x["price"], torch.from_numpy(-features["price"][:8]).float())
    assert dm.hparams["columns"] == ["image", "price"]
