"""Predictions through the real DataModule loaders: row ids reach the writer, the table joins one-to-one."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from checkpoint.tiny import TinyClassifier, make_data, trainer

from lightning_dm8 import DM8DataModule, DM8PredictionWriter, write_arrays
from lightning_dm8.db.engine import Database

N = 203  # not a multiple of the batch size


@pytest.mark.parametrize("num_workers", [0, 2])
def test_predictions_from_datamodule_join_back(db_url: str, table_name: str, tmp_path, num_workers: int) -> None:
    x, y = make_data(N, seed=3)
    write_arrays(db_url, table_name, x.numpy(), y.numpy(), progress=False)
    predictions = f"{table_name}_pred"
    model = TinyClassifier()
    dm = DM8DataModule(db_url, predict_table=table_name, batch_size=32, block_size=50, num_workers=num_workers,
                       cache_dir=str(tmp_path / "cache"), progress=False)
    writer = DM8PredictionWriter(db_url, table=predictions, if_exists="replace")
    trainer(tmp_path, [writer]).predict(model, dm, return_predictions=False)

    expected = model(x).argmax(1).numpy()
    db = Database(db_url)
    with db.connect("read predictions") as conn:
        p = sa.table(predictions, sa.column("row_id"), sa.column("prediction"))
        d = sa.table(table_name, sa.column("row_id"), sa.column("label"))
        rows = conn.execute(
            sa.select(p.c.row_id, p.c.prediction, d.c.label).select_from(p.join(d, p.c.row_id == d.c.row_id))
            .order_by(p.c.row_id)
        ).all()
        total = conn.execute(sa.select(sa.func.count()).select_from(p)).scalar_one()
    db.dispose()
    assert total == N and len(rows) == N
    assert [r[0] for r in rows] == list(range(N))
    assert np.array_equal(np.array([r[1] for r in rows]), expected)
    assert np.array_equal(np.array([r[2] for r in rows]), y.numpy())
