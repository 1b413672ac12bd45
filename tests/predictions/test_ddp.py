"""Predictions on two DDP ranks in real processes (gloo on CPU): each row id is written once, whatever the padding.

With 5 rows on 2 ranks the loader's own plan pads the second rank's share by repeating the first row: rank 0
predicts rows ``[0 1 2]``, rank 1 ``[3 4 0]``. Both ranks write row 0; the table must hold it once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from checkpoint.tiny import TinyClassifier, make_data
from loading.support import quiet_trainer

from lightning_dm8 import DM8DataModule, DM8PredictionWriter, write_arrays
from lightning_dm8.db.engine import Database
from lightning_dm8.loading.plan import PlanConfig, padding_rows, worker_order

pytestmark = pytest.mark.slow

N_ROWS = 5
BATCH = 2


def test_the_loader_plan_repeats_row_zero_on_the_second_rank() -> None:
    plan = PlanConfig(n_rows=N_ROWS, block_size=64, batch_size=BATCH, world_size=2)
    orders = [worker_order(plan, 0, rank, 0, "cold").tolist() for rank in (0, 1)]
    assert orders == [[0, 1, 2], [3, 4, 0]] and padding_rows(plan) == 1


def predict_on_two_ranks(url: str, table: str, tmp_path: Path, **writer_options: object) -> TinyClassifier:
    x, y = make_data(N_ROWS, seed=5)
    write_arrays(url, table, x.numpy(), y.numpy(), progress=False)
    model = TinyClassifier()
    dm = DM8DataModule(url, predict_table=table, batch_size=BATCH, block_size=64, num_workers=0, cache_dir=None,
                       progress=False)
    writer = DM8PredictionWriter(url, f"{table}_pred", flush_rows=1, **writer_options)  # type: ignore[arg-type]
    quiet_trainer(devices=2, strategy="ddp_fork", callbacks=[writer], default_root_dir=str(tmp_path)).predict(
        model, datamodule=dm, return_predictions=False
    )
    return model


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_each_row_id_is_written_once_on_two_ranks(db_url: str, table_name: str, tmp_path: Path) -> None:
    model = predict_on_two_ranks(db_url, table_name, tmp_path)
    db = Database(db_url)
    with db.connect("read predictions") as conn:
        p = sa.table(f"{table_name}_pred", sa.column("row_id"), sa.column("prediction"))
        rows = conn.execute(sa.select(p.c.row_id, p.c.prediction).order_by(p.c.row_id)).all()
    db.dispose()
    x, _ = make_data(N_ROWS, seed=5)
    assert [r[0] for r in rows] == list(range(N_ROWS))  # row 0 once, though both ranks predicted it
    assert np.array_equal([r[1] for r in rows], model(x).argmax(1).numpy())
