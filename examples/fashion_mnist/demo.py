"""The main job on the embedded default: Fashion-MNIST (or scikit-learn's digits) -> SQLite -> train -> test.

Run from the repository root: ``python examples/fashion_mnist/demo.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lightning.pytorch as pl  # noqa: E402

from examples.fashion_mnist.model import SmallCNN  # noqa: E402
from lightning_dm8 import DM8DataModule  # noqa: E402
from lightning_dm8.commands.importing import import_source  # noqa: E402
from lightning_dm8.importers.idx import FASHION_MNIST_ROOT  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default="runs/demo", help="where the SQLite database, cache and logs go")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'demo.db'}"
    source = "fashion-mnist" if Path(FASHION_MNIST_ROOT).is_dir() else "digits"
    if source == "digits":
        print(f"{FASHION_MNIST_ROOT} not found (apt-get install dataset-fashion-mnist); using scikit-learn's digits")
    start = time.perf_counter()
    import_source(source, url, "demo", if_exists="replace")
    pl.seed_everything(0)
    dm = DM8DataModule(url, train_table="demo_train", val_table="demo_test", test_table="demo_test",
                       batch_size=128, cache_dir=str(workdir / "cache"), seed=0)
    model = SmallCNN(image_size=28 if source == "fashion-mnist" else 8)
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", default_root_dir=str(workdir),
                         enable_checkpointing=False, logger=False)
    trainer.fit(model, dm)
    result = trainer.test(model, dm)[0]
    print(f"{source}: test accuracy {result['test_acc']:.4f} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
