"""``DM8PredictionWriter``: ``trainer.predict`` outputs written into a table, one row per input row.

The table has ``row_id`` (the input row's id, primary key, so it joins one-to-one with the dataset table),
``prediction`` (BIGINT class id, or DOUBLE value) and ``scores`` (per-class probabilities as one little-endian
float32 blob: decode with ``numpy.frombuffer(scores, "<f4")``; NULL when the model gives none). One blob column
rather than a column per class keeps the schema independent of the number of classes.

Rows go to a staging table in batches through the bulk path (``insert_rows``); at the end of ``predict`` global
rank 0 swaps it in under the final name (dropping the old table for ``if_exists="replace"``). A failed or killed
predict run therefore never leaves a half-written table under that name.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import sqlalchemy as sa
from lightning.pytorch.callbacks import BasePredictionWriter

from lightning_dm8.checkpoint.prediction_rows import RowIds, current_loader, decode_outputs
from lightning_dm8.db.engine import Database
from lightning_dm8.db.fastpath import insert_rows
from lightning_dm8.db.schema import binary_type
from lightning_dm8.errors import InvalidInputError, LightningDM8Error, TableExistsError
from lightning_dm8.tables.ddl import rename_table, table_exists

log = logging.getLogger(__name__)

IfExists = Literal["fail", "replace"]
PredictionType = Literal["auto", "int", "float"]


def prediction_table(name: str, backend: str, kind: str, score_width: int | None) -> sa.Table:
    """The predictions table: ``row_id`` BIGINT key, ``prediction`` BIGINT/DOUBLE, ``scores`` float32 blob."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("row_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("prediction", sa.BigInteger if kind == "int" else sa.Float(53), nullable=False),
        sa.Column("scores", binary_type(backend, None if score_width is None else 4 * score_width)),
    )


class DM8PredictionWriter(BasePredictionWriter):
    """Write predictions into table ``table`` of the database at ``url``.

    Args:
        url: database URL (password from ``LIGHTNING_DM8_PASSWORD`` when the URL has none).
        table: the predictions table.
        if_exists: ``"fail"`` (checked before predicting starts) or ``"replace"``.
        scores: store per-class probabilities when the model gives them.
        prediction_type: ``"auto"`` (from the first batch), ``"int"`` or ``"float"``.
        flush_rows: rows buffered before each bulk insert.
    """

    def __init__(
        self,
        url: str,
        table: str,
        if_exists: IfExists = "fail",
        scores: bool = True,
        prediction_type: PredictionType = "auto",
        flush_rows: int = 10_000,
    ) -> None:
        super().__init__(write_interval="batch")
        if if_exists not in ("fail", "replace"):
            raise InvalidInputError(f"DM8PredictionWriter if_exists must be 'fail' or 'replace'; got {if_exists!r}")
        if prediction_type not in ("auto", "int", "float"):
            raise InvalidInputError(f"prediction_type must be 'auto', 'int' or 'float'; got {prediction_type!r}")
        if not isinstance(table, str) or not table.strip() or len(table) > 120:
            raise InvalidInputError(f"the predictions table name must be 1-120 characters; got {table!r}")
        self.db = Database(url)
        self.table = table
        self.if_exists = if_exists
        self.scores = scores
        self.prediction_type = prediction_type
        self.flush_rows = max(1, int(flush_rows))
        self._staging: str | None = None
        self._target: sa.Table | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._row_ids = RowIds(distributed=False)
        self.rows_written = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db.url!r}, table={self.table!r})"

    @property
    def where(self) -> str:
        return f"predictions table {self.table!r} in {self.db.url}"

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._staging = None
        num = trainer.num_predict_batches
        if isinstance(num, list) and len(num) > 1:
            raise InvalidInputError(
                f"DM8PredictionWriter writes one table per predict run; got {len(num)} predict dataloaders"
            )
        with self.db.connect(f"check {self.table!r}") as conn:
            exists = table_exists(conn, self.table)
        if exists and self.if_exists == "fail":
            raise TableExistsError(
                f"{self.where} already exists; pass if_exists='replace' to overwrite it or choose another table"
            )
        staging = f"ldm8_tmp_{uuid.uuid4().hex[:12]}" if trainer.is_global_zero else None
        self._staging = trainer.strategy.broadcast(staging)
        self._target, self._rows, self.rows_written = None, [], 0
        self._row_ids = RowIds(distributed=trainer.world_size > 1)
        trainer.strategy.barrier("DM8PredictionWriter.on_predict_start")

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        values, scores = decode_outputs(prediction)
        loader = current_loader(trainer.predict_dataloaders, dataloader_idx)
        ids = self._row_ids.next(loader, batch_indices, len(values))
        table = self._table_for(values, scores)
        is_int = isinstance(table.c.prediction.type, sa.BigInteger)
        if is_int and values.dtype != np.int64:
            raise InvalidInputError(
                f"batch {batch_idx} predicts float values but {self.where} stores class ids (the first batch did); "
                f"set prediction_type='float'"
            )
        blobs: list[bytes | None] = [None] * len(values)
        if scores is not None and self.scores:
            blobs = [row.astype("<f4").tobytes() for row in scores]
        cast = int if is_int else float
        self._rows.extend(zip(ids.tolist(), map(cast, values.tolist()), blobs))
        if len(self._rows) >= self.flush_rows:
            self._flush()

    def _table_for(self, values: np.ndarray, scores: np.ndarray | None) -> sa.Table:
        """The staging table, created on the first batch (when the value type and the number of classes are known)."""
        if self._target is None:
            assert self._staging is not None, "on_predict_start has not run"
            kind = self.prediction_type
            if kind == "auto":
                kind = "int" if values.dtype == np.int64 else "float"
            width = scores.shape[1] if scores is not None and self.scores else None
            self._target = prediction_table(self._staging, self.db.backend, kind, width)
            self._create(self._target)
        return self._target

    def _create(self, table: sa.Table) -> None:
        try:
            with self.db.begin(f"create staging table for {self.table!r}") as conn:
                table.create(conn, checkfirst=True)
        except LightningDM8Error:  # another rank created it first
            with self.db.connect(f"check staging table for {self.table!r}") as conn:
                if not table_exists(conn, table.name):
                    raise

    def _flush(self) -> None:
        if not self._rows:
            return
        assert self._target is not None
        with self.db.begin(f"write predictions into {self.table!r}") as conn:
            insert_rows(conn, self._target, self._rows)
        self.rows_written += len(self._rows)
        self._rows = []

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush()

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush()
        trainer.strategy.barrier("DM8PredictionWriter.flush")
        if trainer.is_global_zero:
            self._publish()
        trainer.strategy.barrier("DM8PredictionWriter.publish")
        self.db.dispose()

    def _publish(self) -> None:
        assert self._staging is not None
        staging = self._target if self._target is not None else prediction_table(
            self._staging, self.db.backend, "int" if self.prediction_type == "int" else "float", None
        )
        with self.db.begin(f"publish {self.table!r}") as conn:
            staging.create(conn, checkfirst=True)
            if table_exists(conn, self.table):
                if self.if_exists == "fail":
                    raise TableExistsError(f"{self.where} was created while predicting; the predictions were not kept")
                sa.Table(self.table, sa.MetaData()).drop(conn)
            rename_table(conn, staging.name, self.table)
        log.info("wrote predictions to %s", self.where)
        self._staging = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Drop the staging table: a failed predict run leaves nothing behind."""
        if self._staging is None or not trainer.is_global_zero:
            return
        try:
            with self.db.begin(f"drop staging table for {self.table!r}") as conn:
                sa.Table(self._staging, sa.MetaData()).drop(conn, checkfirst=True)
        except Exception:  # the original error is what the user needs to see
            log.debug("could not drop the staging table %s", self._staging, exc_info=True)
        self._staging = None
        self.db.dispose()
