"""DM8PredictionWriter: one row per input row, joined back to the dataset table in SQL."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from checkpoint.tiny import TinyClassifier, make_data, trainer
from torch.utils.data import DataLoader, TensorDataset

from lightning_dm8 import write_arrays
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import InvalidInputError, TableExistsError
from lightning_dm8.predictions.rows import RowIds, current_loader, decode_outputs
from lightning_dm8.predictions.writer import DM8PredictionWriter

N = 70  # not a multiple of the batch size


class RowIdLoader:
    """Like the project's DataModule loaders: yields batches and keeps a FIFO of their row ids."""

    def __init__(self, x: torch.Tensor, row_ids: np.ndarray, batch_size: int = 16) -> None:
        self.x, self.row_ids, self.batch_size = x, row_ids, batch_size
        self.pending: deque[np.ndarray] = deque()

    def __len__(self) -> int:
        return math.ceil(len(self.row_ids) / self.batch_size)

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        for start in range(0, len(self.row_ids), self.batch_size):
            ids = self.row_ids[start : start + self.batch_size]
            self.pending.append(ids)
            yield [self.x[ids]]

    def pop_row_ids(self) -> np.ndarray:
        return self.pending.popleft()


def _predictions(url: str, table: str) -> dict[int, tuple[Any, ...]]:
    db = Database(url)
    with db.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT row_id, prediction, scores FROM {table}")).all()
    db.dispose()
    return {int(r[0]): (r[1], r[2]) for r in rows}


def _model() -> TinyClassifier:
    torch.manual_seed(0)
    return TinyClassifier()


def test_one_row_per_input_row_joins_back_one_to_one(db_url: str, table_name: str, tmp_path) -> None:
    x, y = make_data(N)
    write_arrays(db_url, f"{table_name}_data", x.numpy(), y.numpy(), progress=False)
    model = _model()
    writer = DM8PredictionWriter(db_url, f"{table_name}_pred", flush_rows=25)
    trainer(tmp_path, [writer]).predict(model, DataLoader(TensorDataset(x), batch_size=16), return_predictions=False)
    assert writer.rows_written == N

    got = _predictions(db_url, f"{table_name}_pred")
    assert sorted(got) == list(range(N))
    expected = model(x).softmax(1).detach().numpy()
    for row_id, (prediction, scores) in got.items():
        assert prediction == int(expected[row_id].argmax())
        np.testing.assert_allclose(np.frombuffer(scores, "<f4"), expected[row_id], rtol=1e-5)
    db = Database(db_url)
    with db.connect() as conn:
        joined = conn.execute(sa.text(
            f"SELECT COUNT(*), COUNT(DISTINCT p.row_id), SUM(CASE WHEN p.prediction = d.label THEN 1 ELSE 0 END) "
            f"FROM {table_name}_pred p JOIN {table_name}_data d ON d.row_id = p.row_id"
        )).one()
    db.dispose()
    assert (joined[0], joined[1]) == (N, N)
    assert joined[2] == int((expected.argmax(1) == y.numpy()).sum())


def test_row_ids_come_from_pop_row_ids_when_the_loader_has_it(db_url: str, table_name: str, tmp_path) -> None:
    x, _ = make_data(N)
    order = np.random.default_rng(3).permutation(N)
    model = _model()
    writer = DM8PredictionWriter(db_url, f"{table_name}_pred")
    trainer(tmp_path, [writer]).predict(model, RowIdLoader(x, order), return_predictions=False)
    got = _predictions(db_url, f"{table_name}_pred")
    assert sorted(got) == list(range(N))
    classes = model(x).argmax(1).numpy()
    assert all(prediction == classes[row_id] for row_id, (prediction, _) in got.items())


def test_if_exists_fail_keeps_the_table_and_replace_swaps_it(db_url: str, table_name: str, tmp_path) -> None:
    x, _ = make_data(N)
    target = f"{table_name}_pred"
    first = DataLoader(TensorDataset(x[:10]), batch_size=4)
    trainer(tmp_path, [DM8PredictionWriter(db_url, target)]).predict(_model(), first, return_predictions=False)
    with pytest.raises(TableExistsError, match="if_exists='replace'"):
        trainer(tmp_path, [DM8PredictionWriter(db_url, target)]).predict(
            _model(), DataLoader(TensorDataset(x), batch_size=16), return_predictions=False
        )
    assert sorted(_predictions(db_url, target)) == list(range(10))
    trainer(tmp_path, [DM8PredictionWriter(db_url, target, if_exists="replace")]).predict(
        _model(), DataLoader(TensorDataset(x), batch_size=16), return_predictions=False
    )
    assert sorted(_predictions(db_url, target)) == list(range(N))


class _Recording(DM8PredictionWriter):
    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        super().on_predict_start(trainer, pl_module)
        self.staging_name = self._staging


class _FailingModel(TinyClassifier):
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if batch_idx == 2:
            raise RuntimeError("boom in predict_step")
        return super().predict_step(batch, batch_idx)


def test_a_failed_predict_run_leaves_no_table(db_url: str, table_name: str, tmp_path) -> None:
    x, _ = make_data(N)
    writer = _Recording(db_url, f"{table_name}_pred", flush_rows=1)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(tmp_path, [writer]).predict(_FailingModel(), DataLoader(TensorDataset(x), batch_size=16))
    assert writer.rows_written == 32  # two batches reached the staging table before the failure
    db = Database(db_url)
    with db.connect() as conn:
        inspector = sa.inspect(conn)
        assert not inspector.has_table(f"{table_name}_pred")
        assert not inspector.has_table(writer.staging_name)
    db.dispose()


def test_regression_values_are_stored_as_floats_without_scores(db_url: str, table_name: str, tmp_path) -> None:
    class Regressor(TinyClassifier):
        def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
            return {"prediction": self(batch[0])[:, 0]}

    x, _ = make_data(N)
    model = Regressor()
    writer = DM8PredictionWriter(db_url, f"{table_name}_pred")
    trainer(tmp_path, [writer]).predict(model, DataLoader(TensorDataset(x), batch_size=32), return_predictions=False)
    got = _predictions(db_url, f"{table_name}_pred")
    values = model(x)[:, 0].detach().numpy()
    assert len(got) == N
    assert all(scores is None for _, scores in got.values())
    np.testing.assert_allclose([got[i][0] for i in range(N)], values, rtol=1e-6)


def test_outputs_are_decoded_into_predictions_and_scores() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    prediction, scores = decode_outputs(logits)
    assert prediction.tolist() == [1, 0] and prediction.dtype == np.int64
    np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-6)
    assert decode_outputs(torch.tensor([2, 0, 1]))[0].tolist() == [2, 0, 1]
    values, none = decode_outputs(torch.tensor([[0.5], [1.5]]))
    assert values.dtype == np.float64 and values.tolist() == [0.5, 1.5] and none is None
    given = decode_outputs({"prediction": np.array([1, 2]), "scores": torch.tensor([[0.1, 0.9], [0.3, 0.7]])})
    assert given[0].tolist() == [1, 2] and given[1].dtype == np.float32
    with pytest.raises(TypeError, match="'prediction'"):
        decode_outputs({"logits": logits})
    with pytest.raises(TypeError, match="cannot store"):
        decode_outputs("text")


def test_row_id_sources_and_loader_lookup() -> None:
    ids = RowIds(distributed=False)
    assert ids.next(object(), [4, 5], 2).tolist() == [4, 5]
    assert ids.next(object(), None, 3).tolist() == [2, 3, 4]  # the running position counts the 2 rows seen
    with pytest.raises(RuntimeError, match="gave 1 row ids for a batch of 2"):
        ids.next(object(), [1], 2)
    with pytest.raises(RuntimeError, match="distributed"):
        RowIds(distributed=True).next(object(), None, 2)
    loaders = [object(), object()]
    assert current_loader(loaders, 1) is loaders[1]
    assert current_loader({"a": loaders[0]}, 0) is loaders[0]
    assert current_loader(loaders[0], 0) is loaders[0]
    from lightning.pytorch.utilities import CombinedLoader

    assert current_loader(CombinedLoader(loaders, "sequential"), 1) is loaders[1]


def test_replace_never_drops_a_table_the_writer_did_not_make(db_url: str, table_name: str, tmp_path) -> None:
    users = f"{table_name}_users"
    db = Database(db_url)
    with db.begin() as conn:
        table = sa.Table(users, sa.MetaData(), sa.Column("row_id", sa.Integer), sa.Column("email", sa.String(50)))
        table.create(conn)
        conn.execute(table.insert().values(row_id=1, email="a@example.org"))
    x, _ = make_data(N)
    with pytest.raises(TableExistsError, match="is not a predictions table"):
        trainer(tmp_path, [DM8PredictionWriter(db_url, users, if_exists="replace")]).predict(
            _model(), DataLoader(TensorDataset(x), batch_size=16), return_predictions=False
        )
    with db.connect() as conn:
        assert conn.execute(sa.select(table.c.email)).scalars().all() == ["a@example.org"]
    db.dispose()


@pytest.mark.parametrize(
    ("name", "message"),
    [("ldm8_datasets", "reserved for the project's own tables"), ("LDM8_checkpoints", "reserved"),
     ("preds\x1b[2J", "control character"), ("", "empty"), ("p" * 121, "at most 120")],
)
def test_bad_table_names_are_refused_before_predicting(name: str, message: str, tmp_path) -> None:
    with pytest.raises(InvalidInputError, match=message):
        DM8PredictionWriter(f"sqlite:///{tmp_path / 'p.db'}", name)
