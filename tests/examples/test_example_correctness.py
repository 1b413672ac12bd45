"""The correctness experiment: training from the database equals training from memory, step for step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from examples.experiments.correctness import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(tmp_path: Path, *argv: str) -> dict:
    return main([*argv, "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), "--threads", "1"])


def check_equivalence(result: dict, tmp_path: Path, name: str, steps: int, epochs: int) -> None:
    png = tmp_path / "out" / f"{name}_equivalence.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    saved = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    db, memory = saved["equivalence"]["database"], saved["equivalence"]["memory"]
    assert len(db["step_loss"]) == len(memory["step_loss"]) == steps
    assert len(db["train_loss"]) == len(db["train_acc"]) == len(db["test_acc"]) == epochs
    for key in ("step_loss", "train_loss", "train_acc", "test_acc"):
        np.testing.assert_allclose(db[key], memory[key], rtol=1e-6, atol=0, err_msg=key)
    assert result["equivalence"]["max_abs_diff"]["train_loss"] <= 1e-6 * max(db["train_loss"])
    if epochs > 1:
        assert db["train_loss"][-1] < db["train_loss"][0]  # it did learn


@pytest.mark.slow
def test_fashion_mnist_from_the_database_equals_from_memory(fashion_root: Path, tmp_path: Path) -> None:
    result = run(tmp_path, "--dataset", "fashion-mnist", "--root", str(fashion_root), "--limit", "320",
                 "--epochs", "2", "--batch-size", "64", "--parts", "equivalence")
    assert result["rows"] == {"train": 320, "test": 320}
    check_equivalence(result, tmp_path, "fashion_mnist", steps=2 * 5, epochs=2)


@pytest.mark.slow
def test_rotten_tomatoes_text_path_equals_from_memory(wheel_dir: Path, tmp_path: Path) -> None:
    result = run(tmp_path, "--dataset", "rotten-tomatoes", "--root", str(wheel_dir), "--limit", "300",
                 "--epochs", "2", "--parts", "equivalence")
    assert result["vocab_size"] > 1000
    check_equivalence(result, tmp_path, "rotten_tomatoes", steps=2 * 5, epochs=2)  # 300 rows in batches of 64


@pytest.mark.slow
def test_user_supplied_cifar10_and_agnews_folders(cifar_root: Path, agnews_root: Path, tmp_path: Path) -> None:
    cifar = run(tmp_path, "--dataset", "cifar10", "--root", str(cifar_root), "--epochs", "1", "--batch-size", "16",
                "--parts", "equivalence")
    check_equivalence(cifar, tmp_path, "cifar10", steps=4, epochs=1)
    agnews = run(tmp_path, "--dataset", "agnews", "--root", str(agnews_root), "--epochs", "2", "--batch-size", "8",
                 "--parts", "equivalence")
    check_equivalence(agnews, tmp_path, "agnews", steps=2 * 6, epochs=2)


@pytest.mark.slow
def test_shuffle_experiment_compares_three_orders(wheel_dir: Path, tmp_path: Path) -> None:
    result = run(tmp_path, "--dataset", "rotten-tomatoes", "--root", str(wheel_dir), "--limit", "400",
                 "--epochs", "2", "--block-size", "32", "--parts", "shuffle")
    curves = result["shuffle"]["test_acc"]
    assert set(curves) == {"full_shuffle", "dm8_cold_cache", "dm8_no_cache"}
    for runs in curves.values():
        assert len(runs) == 1 and len(runs[0]) == 2 and all(0.0 <= a <= 1.0 for a in runs[0])
    # the first epoch is cold in both DM8 runs: the same block-shuffled order, so the same model
    assert curves["dm8_cold_cache"][0][0] == curves["dm8_no_cache"][0][0]
    png = tmp_path / "out" / "rotten_tomatoes_shuffle.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "equivalence" not in json.loads((tmp_path / "out" / "rotten_tomatoes.json").read_text())


def test_unknown_parts_are_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(tmp_path, "--dataset", "fashion-mnist", "--parts", "equivalence,speed")
    assert "speed" in capsys.readouterr().err
