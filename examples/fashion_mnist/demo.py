"""The main job on the embedded default, SQLite, end to end on real data.

Fashion-MNIST (Debian's dataset-fashion-mnist; scikit-learn's 8x8 digits where it is not installed) is imported
into a SQLite database, a small CNN trains through DM8DataModule with its checkpoints stored in the same
database, the best checkpoint is restored from the database to test, and the predictions are written back
into a table that joins one-to-one with the test table.

Run from the repository root: ``python examples/fashion_mnist/demo.py`` (or ``bash scripts/demo.sh``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lightning.pytorch as pl  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from examples.fashion_mnist.model import SmallCNN  # noqa: E402
from lightning_dm8 import Database, DM8Checkpoint, DM8DataModule, DM8PredictionWriter  # noqa: E402
from lightning_dm8.importers.idx import FASHION_MNIST_ROOT  # noqa: E402
from lightning_dm8.importers.pipeline import import_source  # noqa: E402


def prediction_accuracy(url: str, predictions: str, dataset: str) -> tuple[int, float]:
    """Join the predictions with the dataset table in SQL: (rows joined, share predicted right)."""
    db = Database(url)
    with db.connect("check predictions") as conn:
        p = sa.table(predictions, sa.column("row_id"), sa.column("prediction"))
        d = sa.table(dataset, sa.column("row_id"), sa.column("label"))
        joined, right = conn.execute(
            sa.select(sa.func.count(), sa.func.sum(sa.case((p.c.prediction == d.c.label, 1), else_=0)))
            .select_from(p.join(d, p.c.row_id == d.c.row_id))
        ).one()
    db.dispose()
    return int(joined), float(right) / max(1, int(joined))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/demo", help="where the SQLite database, cache and logs go")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--source", choices=["auto", "fashion-mnist", "digits"], default="auto",
                        help="auto: Fashion-MNIST when Debian's dataset-fashion-mnist is installed, else digits")
    parser.add_argument("--limit", type=int, help="keep only the first LIMIT images of each split (a quick run)")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'demo.db'}"
    source = args.source
    if source == "auto":
        source = "fashion-mnist" if Path(FASHION_MNIST_ROOT).is_dir() else "digits"
        if source == "digits":
            print(f"{FASHION_MNIST_ROOT} not found (apt-get install dataset-fashion-mnist); using scikit-learn's "
                  f"digits")
    start = time.perf_counter()
    import_source(source, url, "demo", if_exists="replace", limit=args.limit)
    pl.seed_everything(0)
    dm = DM8DataModule(url, train_table="demo_train", val_table="demo_test", test_table="demo_test",
                       predict_table="demo_test", batch_size=128, cache_dir=str(workdir / "cache"), seed=0)
    run = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"

    def checkpoints() -> DM8Checkpoint:
        """The same callback (run, monitor, mode) for training and for restoring: Lightning matches a checkpoint's
        callback state to the callbacks of the Trainer that restores it."""
        return DM8Checkpoint(url, run=run, monitor="val_acc", mode="max", save_top_k=1)

    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", default_root_dir=str(workdir), logger=False,
                         callbacks=[checkpoints()])
    trainer.fit(SmallCNN(image_size=28 if source == "fashion-mnist" else 8), dm)

    best = f"dm8:{run}:best"
    print(f"restoring {best} from the database")
    evaluator = pl.Trainer(accelerator="cpu", logger=False, default_root_dir=str(workdir),
                           callbacks=[checkpoints(),
                                      DM8PredictionWriter(url, table="demo_predictions", if_exists="replace")])
    model = SmallCNN(image_size=28 if source == "fashion-mnist" else 8)
    accuracy = evaluator.test(model, dm, ckpt_path=best)[0]["test_acc"]
    evaluator.predict(model, dm, ckpt_path=best, return_predictions=False)
    joined, stored = prediction_accuracy(url, "demo_predictions", "demo_test")
    print(f"predictions: {joined} rows in demo_predictions, {stored:.4f} of them right (joined in SQL)")
    print(f"{source}: test accuracy {accuracy:.4f} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
