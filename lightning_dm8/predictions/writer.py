"""``DM8PredictionWriter``: ``trainer.predict`` outputs written into a table, one row per input row.

The table (see :mod:`lightning_dm8.predictions.schema`) has ``row_id`` (the input row's id, primary key, so it joins
one-to-one with the dataset table), ``prediction`` and ``scores``.

Rows go to a staging table in batches through the bulk path (``insert_rows``); at the end of ``predict`` global
rank 0 publishes it under the final name with the helper the dataset writers share
(:func:`lightning_dm8.tables.staging.publish_staged`; the previous predictions go with ``if_exists="replace"``). A
failed or killed predict run therefore never leaves a half-written table under that name.

On several ranks the loaders pad the last rank's share by repeating rows from the start of the epoch (at most
``world_size - 1``), so the same row id can reach two ranks. Each id is written once: a rank whose insert meets ids
another rank already wrote drops those rows and inserts the rest (the prediction of a row is the same on every
rank). ``replace`` drops only a table with the predictions table's own columns, and names starting with the
project's reserved prefix ``ldm8_`` are refused, so the writer never replaces a table it did not make.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import sqlalchemy as sa
from lightning.pytorch.callbacks import BasePredictionWriter
from typing_extensions import override

from lightning_dm8.db.coerce import as_database
from lightning_dm8.db.engine import Database
from lightning_dm8.db.fastpath import insert_rows
from lightning_dm8.db.names import check_table_name
from lightning_dm8.errors import InvalidInputError, LightningDM8Error, TableExistsError
from lightning_dm8.predictions.rows import RowIds, current_loader, decode_outputs
from lightning_dm8.predictions.schema import PredictionKind, is_prediction_table, prediction_table
from lightning_dm8.tables.ddl import table_exists
from lightning_dm8.tables.staging import drop_quietly, publish_staged, published_table, staging_name
from lightning_dm8.tables.writer import RESERVED_PREFIX

log = logging.getLogger(__name__)

IfExists = Literal["fail", "replace"]
PredictionType = Literal["auto", "int", "float"]

_ID_LOOKUP_BATCH = 500
_INSERT_ATTEMPTS = 4


class DM8PredictionWriter(BasePredictionWriter):
    """Write predictions into table ``table`` of the database at ``url``.

    Args:
        url: database URL (password from ``LIGHTNING_DM8_PASSWORD`` when the URL has none), or a ``Database``.
        table: the predictions table.
        if_exists: ``"fail"`` (checked before predicting starts) or ``"replace"`` (only a predictions table).
        scores: store per-class probabilities when the model gives them.
        prediction_type: ``"auto"`` (from the first batch), ``"int"`` or ``"float"``.
        flush_rows: rows buffered before each bulk insert.

    Raises:
        InvalidInputError: a bad option or table name (checked here, before any prediction runs).
        TableExistsError: the table exists and ``if_exists="fail"``, or it is not a predictions table.
    """

    def __init__(
        self,
        url: str | Database,
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
        self.db = as_database(url)
        check_table_name(self.db.backend, table, "predictions table")
        if table.lower().startswith(RESERVED_PREFIX):
            raise InvalidInputError(
                f"predictions table {table!r}: names starting with {RESERVED_PREFIX!r} are reserved for the "
                f"project's own tables; choose another name"
            )
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
        self.rows_skipped = 0
        """Rows not written because another rank wrote the same row id (padding)."""

    @override
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db.url!r}, table={self.table!r})"

    @property
    def where(self) -> str:
        return f"predictions table {self.table!r} in {self.db.url}"

    @override
    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._staging = None
        num = trainer.num_predict_batches
        if isinstance(num, list) and len(num) > 1:
            raise InvalidInputError(
                f"DM8PredictionWriter writes one table per predict run; got {len(num)} predict dataloaders"
            )
        with self.db.connect(f"check {self.table!r}") as conn:
            self._check_replaceable(conn)
        self._staging = trainer.strategy.broadcast(staging_name() if trainer.is_global_zero else None)
        self._target, self._rows, self.rows_written, self.rows_skipped = None, [], 0, 0
        self._row_ids = RowIds(distributed=trainer.world_size > 1)
        trainer.strategy.barrier("DM8PredictionWriter.on_predict_start")

    def _check_replaceable(self, conn: sa.Connection, while_predicting: bool = False) -> None:
        """Raise when the table exists and may not be replaced."""
        if not table_exists(conn, self.table):
            return
        if self.if_exists == "fail" and while_predicting:
            raise TableExistsError(f"{self.where} was created while predicting; the predictions were not kept")
        if self.if_exists == "fail":
            raise TableExistsError(
                f"{self.where} already exists; pass if_exists='replace' to overwrite it or choose another table"
            )
        # A published name is a view (which some dialects do not describe): check the table behind it.
        if not is_prediction_table(conn, published_table(self.db, self.table) or self.table):
            raise TableExistsError(
                f"{self.where} exists and is not a predictions table (its columns are not row_id, prediction, "
                f"scores): if_exists='replace' replaces only a table this writer made; choose another table"
            )

    @override
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
        self._rows.extend(zip(ids.tolist(), map(cast, values.tolist()), blobs, strict=True))
        if len(self._rows) >= self.flush_rows:
            self._flush()

    def _table_for(self, values: np.ndarray, scores: np.ndarray | None) -> sa.Table:
        """The staging table, created on the first batch (when the value type and the number of classes are known)."""
        if self._target is None:
            assert self._staging is not None, "on_predict_start has not run"
            kind: PredictionKind
            if self.prediction_type == "auto":
                kind = "int" if values.dtype == np.int64 else "float"
            else:
                kind = self.prediction_type
            width = scores.shape[1] if scores is not None and self.scores else None
            self._target = prediction_table(self._staging, self.db.backend, kind, width)
            self._create(self._target)
        return self._target

    def _create(self, table: sa.Table) -> None:
        try:
            with self.db.begin(f"create staging table for {self.table!r}") as conn:
                self.db.backend.create_table(conn, table, checkfirst=True)
        except LightningDM8Error:  # another rank created it first
            with self.db.connect(f"check staging table for {self.table!r}") as conn:
                if not table_exists(conn, table.name):
                    raise

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        assert self._target is not None
        for attempt in range(_INSERT_ATTEMPTS):
            try:
                with self.db.begin(f"write predictions into {self.table!r}") as conn:
                    insert_rows(conn, self._target, rows)
            except LightningDM8Error:
                # On several ranks a failed insert may have met row ids another rank wrote (padding): drop those
                # rows and insert the rest. When no id was written before, the failure is something else.
                written = self._written_ids(rows) if self._row_ids.distributed else set()
                if not written or attempt == _INSERT_ATTEMPTS - 1:
                    raise
                kept = [r for r in rows if r[0] not in written]
                self.rows_skipped += len(rows) - len(kept)
                log.debug("skipped %d row id(s) another rank wrote already (padding)", len(rows) - len(kept))
                rows = kept
                if not rows:
                    return
                continue
            self.rows_written += len(rows)
            return

    def _written_ids(self, rows: Sequence[tuple[Any, ...]]) -> set[int]:
        """The row ids of ``rows`` already in the staging table."""
        assert self._target is not None
        row_id = self._target.c.row_id
        ids = sorted({r[0] for r in rows})
        written: set[int] = set()
        with self.db.connect(f"look up row ids in {self.table!r}") as conn:
            for start in range(0, len(ids), _ID_LOOKUP_BATCH):
                chunk = ids[start : start + _ID_LOOKUP_BATCH]
                written.update(int(i) for i in conn.execute(sa.select(row_id).where(row_id.in_(chunk))).scalars())
        return written

    @override
    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush()

    @override
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
        with self.db.begin(f"check {self.table!r} before publishing") as conn:
            self.db.backend.create_table(conn, staging, checkfirst=True)  # no batch at all: an empty table
            self._check_replaceable(conn, while_predicting=True)
        publish_staged(self.db, staging.name, self.table, replace=self.if_exists == "replace")
        log.info("wrote predictions to %s", self.where)
        self._staging = None

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Drop the staging table: a failed predict run leaves nothing behind."""
        if self._staging is None or not trainer.is_global_zero:
            return
        drop_quietly(self.db, self._staging)
        self._staging = None
        self.db.dispose()

