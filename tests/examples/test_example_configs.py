"""``lightning-dm8 fit --config examples/<each>/config.yaml`` end to end, and the command line's config handling."""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from jsonargparse import Namespace

from examples.agnews_text.model import TextClassificationModel
from lightning_dm8 import DatasetTable, DM8Checkpoint, DM8PredictionWriter, load_checkpoint
from lightning_dm8.cli import MaskedSaveConfigCallback, lightning_cli, main, mask_config
from lightning_dm8.importers.pipeline import import_source

REPO = Path(__file__).resolve().parents[2]
PASSWORD_URL = "mysql+pymysql://root:secret@127.0.0.1:1/test"


def config(example: str) -> str:
    return str(REPO / "examples" / example / "config.yaml")


def run_example(command: str, example: str, url: str, tmp_path: Path, *extra: str) -> int:
    """``lightning-dm8 COMMAND --config examples/EXAMPLE/config.yaml`` on the database ``url``, all in tmp_path."""
    return main([
        command, "--config", config(example), f"--data.url={url}", f"--data.cache_dir={tmp_path / 'cache'}",
        f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--data.num_workers=0", "--data.progress=false", *extra,
    ])


def import_and_fit(source: str, example: str, class_path: str, tmp_path: Path, root: Path | None, batch_size: int,
                   limit: int | None = None, name: str | None = None) -> tuple[str, dict]:
    """Import ``source`` into a fresh SQLite file, run ``lightning-dm8 fit`` on the example's config for 2 steps, and
    check what every run must leave: its config (with this URL), finite logged metrics, a checkpoint in the database
    after 2 steps and a filled cache. Returns the URL and the checkpoint."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    name = name or source.replace("-", "_")
    import_source(source, url, name, root=None if root is None else str(root), progress=False, limit=limit)
    assert run_example("fit", example, url, tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
                       "--trainer.limit_val_batches=1", "--trainer.log_every_n_steps=1",
                       f"--data.batch_size={batch_size}") == 0
    (saved,) = tmp_path.glob("lightning_logs/version_0/config.yaml")
    settings = yaml.safe_load(saved.read_text())
    assert settings["data"]["url"] == url and settings["data"]["train_table"] == f"{name}_train"
    assert settings["model"]["class_path"] == class_path
    with open(tmp_path / "lightning_logs/version_0/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    train_losses = [float(r[k]) for r in rows for k in r if k.startswith("train_loss") and r[k]]
    val_acc = [float(r["val_acc"]) for r in rows if r.get("val_acc")]
    assert train_losses and all(math.isfinite(v) for v in train_losses)
    assert len(val_acc) == 1 and 0.0 <= val_acc[0] <= 1.0
    (run,) = [c["init_args"]["run"] for c in settings["trainer"]["callbacks"] if c["class_path"].endswith("Checkpoint")]
    state = load_checkpoint(url, run, "latest")  # the checkpoint went to the database of data.url
    assert state["global_step"] == 2
    assert any((tmp_path / "cache").rglob("*")), "the first epoch should have filled the LMDB cache"
    return url, state


needs_cars = pytest.mark.skipif(importlib.util.find_spec("vega_datasets") is None,
                                reason="the cars table ships in vega_datasets (the examples extra)")


@needs_cars
def test_fit_cars_columns_from_a_table_of_mixed_columns(tmp_path: Path) -> None:
    url, state = import_and_fit("cars", "cars_columns", "examples.cars_columns.model.CarOriginModel", tmp_path, None,
                                batch_size=16, limit=60)
    saved = yaml.safe_load((tmp_path / "lightning_logs/version_0/config.yaml").read_text())
    assert saved["data"]["columns"] == ["name", "mpg", "displacement", "horsepower", "weight", "acceleration",
                                        "cylinders", "year"]
    assert saved["data"]["transform"] == {"name": "examples.cars_columns.model.name_words"}
    assert state["state_dict"]["words.weight"].shape == (64, 512)


@pytest.mark.slow
@needs_cars
def test_the_cars_example_learns_the_region_of_origin(tmp_path: Path) -> None:
    """The whole config (30 epochs over 314 cars) beats the majority class (54 of the 78 test cars, 0.69) by far."""
    url = f"sqlite:///{tmp_path / 'cars.db'}"
    import_source("cars", url, "cars", progress=False)
    assert run_example("fit", "cars_columns", url, tmp_path, "--trainer.enable_progress_bar=false") == 0
    with open(tmp_path / "lightning_logs/version_0/metrics.csv") as f:
        val_acc = [float(r["val_acc"]) for r in csv.DictReader(f) if r.get("val_acc")]
    assert len(val_acc) == 30 and val_acc[-1] >= 0.85


@pytest.mark.slow
def test_fit_cifar10_resnet20_with_augmentation(cifar_root: Path, tmp_path: Path) -> None:
    _, state = import_and_fit("cifar10", "cifar10_resnet20", "examples.cifar10_resnet20.model.ResNet20", tmp_path,
                              cifar_root, batch_size=16)
    saved = yaml.safe_load((tmp_path / "lightning_logs/version_0/config.yaml").read_text())
    assert saved["data"]["train_transform"] == "examples.cifar10_resnet20.transforms.random_crop_flip"
    weights = [v for k, v in state["state_dict"].items() if "running" not in k and "tracked" not in k]
    assert sum(v.numel() for v in weights) == 269_722


@pytest.mark.slow
def test_fit_agnews_sizes_the_embedding_from_the_vocabulary_table(agnews_root: Path, tmp_path: Path) -> None:
    url, state = import_and_fit("agnews", "agnews_text", "examples.agnews_text.model.TextClassificationModel",
                                tmp_path, agnews_root, batch_size=8)
    vocab_size = len(DatasetTable(url, "agnews_vocab"))
    assert state["hyper_parameters"]["vocab_size"] == vocab_size
    assert state["state_dict"]["embedding.weight"].shape == (vocab_size, 64)
    checkpoint = tmp_path / "agnews.ckpt"
    assert main(["checkpoints", "export", "--url", url, "agnews", "latest", str(checkpoint)]) == 0
    restored = TextClassificationModel.load_from_checkpoint(checkpoint)  # no database needed to rebuild it
    assert restored.embedding.num_embeddings == vocab_size


@pytest.mark.slow
def test_fit_fashion_mnist_on_the_real_files(fashion_root: Path, tmp_path: Path) -> None:
    url, _ = import_and_fit("fashion-mnist", "fashion_mnist", "examples.fashion_mnist.model.SmallCNN", tmp_path,
                            fashion_root, batch_size=32, limit=96)
    assert len(DatasetTable(url, "fashion_mnist_train")) == 96


@pytest.mark.slow
def test_fit_rotten_tomatoes_on_the_real_corpus(wheel_dir: Path, tmp_path: Path) -> None:
    url, state = import_and_fit("rotten-tomatoes", "rotten_tomatoes",
                                "examples.agnews_text.model.TextClassificationModel", tmp_path, wheel_dir,
                                batch_size=32, limit=200)
    assert state["hyper_parameters"]["num_classes"] == 2
    assert state["hyper_parameters"]["vocab_size"] == len(DatasetTable(url, "rotten_tomatoes_vocab"))


@pytest.mark.slow
def test_fit_test_and_predict_keep_checkpoints_and_predictions_in_the_database(tmp_path: Path) -> None:
    """The config names the database once (``data.url``): the checkpoint callback and the prediction writer use it,
    test and predict restore ``dm8:<run>:best`` from it, and the predictions join the test table there."""
    url, _ = import_and_fit("digits", "fashion_mnist", "examples.fashion_mnist.model.SmallCNN", tmp_path, None,
                            batch_size=32, limit=96, name="fashion_mnist")
    assert run_example("test", "fashion_mnist", url, tmp_path, "--ckpt_path=dm8:fashion_mnist:best") == 0
    assert run_example("predict", "fashion_mnist", url, tmp_path, "--ckpt_path=dm8:fashion_mnist:best") == 0
    with sa.create_engine(url).connect() as conn:
        joined = conn.execute(sa.text(
            "SELECT count(*) FROM fashion_mnist_predictions p JOIN fashion_mnist_test t ON p.row_id = t.row_id"
        )).scalar()
    assert joined == 96


def test_every_example_config_stores_checkpoints_and_predictions_in_the_data_database() -> None:
    for example in ("fashion_mnist", "cifar10_resnet20", "agnews_text", "rotten_tomatoes"):
        cli = lightning_cli(["--config", config(example), "--data.url=sqlite:///elsewhere.db"], run=False)
        found = {type(c): c for c in cli.trainer.callbacks if isinstance(c, (DM8Checkpoint, DM8PredictionWriter))}
        assert set(found) == {DM8Checkpoint, DM8PredictionWriter}, example
        assert found[DM8Checkpoint].url == "sqlite:///elsewhere.db"
        assert found[DM8PredictionWriter].db.url == "sqlite:///elsewhere.db"
        written = yaml.safe_load(Path(config(example)).read_text())["trainer"]["callbacks"]
        assert not any("url" in c.get("init_args", {}) for c in written)  # written once, under data


def test_print_config_shows_the_model_and_the_data_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = "sqlite:///runs/elsewhere.db"
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config("fashion_mnist"), f"--data.url={url}", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "examples.fashion_mnist.model.SmallCNN"
    assert printed["data"]["url"] == url
    assert printed["data"]["train_table"] == "fashion_mnist_train"


def test_print_config_masks_a_password(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", config("fashion_mnist"), f"--data.url={PASSWORD_URL}", "--print_config"])
    printed = capsys.readouterr().out
    assert "root:***@127.0.0.1" in printed and "secret" not in printed


@pytest.mark.parametrize("where", ["command line", "yaml"])
def test_a_config_error_names_the_offending_key(where: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    if where == "yaml":
        bad = tmp_path / "bad.yaml"
        bad.write_text(Path(config("fashion_mnist")).read_text().replace("  batch_size: 128", "  batch_sizee: 128"))
        argv = ["fit", "--config", str(bad)]
    else:
        argv = ["fit", "--config", config("fashion_mnist"), "--data.batch_sizee=3"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code not in (0, None)
    assert "batch_sizee" in capsys.readouterr().err


def test_mask_config_masks_urls_at_any_depth() -> None:
    masked_url = "mysql+pymysql://root:***@127.0.0.1:1/test"
    config = {"data": {"url": PASSWORD_URL, "batch_size": 8}, "runs": [PASSWORD_URL, "not a url", "a@b://c"],
              "parsed": Namespace(data=Namespace(url=PASSWORD_URL, batch_size=8))}
    masked = mask_config(config)
    assert masked["data"] == {"url": masked_url, "batch_size": 8}
    assert masked["runs"] == [masked_url, "not a url", "a@b://c"]
    assert masked["parsed"].data.url == masked_url and masked["parsed"].data.batch_size == 8
    assert config["data"]["url"] == PASSWORD_URL  # the original is untouched


def test_the_saved_config_never_holds_the_password(tmp_path: Path) -> None:
    cli = lightning_cli(["--config", config("fashion_mnist"), f"--data.url={PASSWORD_URL}",
                         f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}"],
                        run=False)
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, MaskedSaveConfigCallback)]
    callback.setup(cli.trainer, cli.model, "fit")  # what `fit` does first; the database is never contacted
    (saved,) = tmp_path.glob("lightning_logs/*/config.yaml")
    text = saved.read_text()
    assert "secret" not in text
    assert yaml.safe_load(text)["data"]["url"] == "mysql+pymysql://root:***@127.0.0.1:1/test"
    assert "secret" not in str(dict(cli.datamodule.hparams))


def test_the_import_command_of_the_examples_readme(cifar_root: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'runs' / 'cifar10' / 'c.db'}"  # the folders are created, as the README needs
    assert main(["import", "cifar10", "--root", str(cifar_root), "--url", url, "--limit", "7"]) == 0
    assert "cifar10_train: 7 rows" in capsys.readouterr().out
    features, label = DatasetTable(url, "cifar10_test")[6]
    assert features.shape == (3, 32, 32) and features.dtype.name == "uint8" and label == 6
    assert main(["import", "cifar10", "--root", str(tmp_path / "missing"), "--url", url, "--if-exists", "replace"]) == 2
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err  # says where to get the files
    assert main(["import", "cifar10", "--root", str(cifar_root), "--url", url, "--limit", "0"]) == 2
    assert "limit must be at least 1" in capsys.readouterr().err
