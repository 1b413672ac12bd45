"""``DM8Checkpoint``: the one callback users add to keep checkpoints in the database.

It is a ``ModelCheckpoint`` (top-k, ``last``, every-n triggers, file naming all come from Lightning) whose
``dirpath`` is virtual (see :mod:`lightning_dm8.checkpoint.paths`), and which installs a ``DM8CheckpointIO`` into
the strategy from ``setup()``. Lightning runs callback ``setup`` before it restores ``ckpt_path``
(``trainer/trainer.py::_run``: ``_call_setup_hook`` then ``_restore_modules_and_callbacks``), so
``trainer.fit(model, ckpt_path="dm8:<run>:best")`` already loads through the database.

Retention runs in the database after every save (inside the IO, so it stays ordered with asynchronous saves):
keep the ``save_top_k`` best by ``monitor`` and the ``keep_last_n`` newest periodic checkpoints, delete the rest. Each
callback's policy covers only the checkpoints it saved (its monitor and mode): several callbacks can share a run.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from typing_extensions import override

from lightning_dm8.checkpoint.errors import CheckpointNotFoundError
from lightning_dm8.checkpoint.io import DM8CheckpointIO
from lightning_dm8.checkpoint.paths import check_run, checkpoint_dirpath, parse_virtual_path
from lightning_dm8.checkpoint.policy import Retention, check_mode
from lightning_dm8.checkpoint.records import META_KEY, CheckpointInfo, finite_or_none
from lightning_dm8.checkpoint.schema import DEFAULT_TABLE, check_table_name
from lightning_dm8.checkpoint.secrets import mask_logged_hparams, secrets_of
from lightning_dm8.checkpoint.store import DEFAULT_CHUNK_SIZE, CheckpointStore
from lightning_dm8.db.coerce import as_database
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import InvalidInputError, LightningDM8Error

log = logging.getLogger(__name__)


class DM8Checkpoint(ModelCheckpoint):
    """Save checkpoints of run ``run`` into model table ``table`` of the database at ``url``.

    Args:
        url: database URL. Leave the password out and set ``LIGHTNING_DM8_PASSWORD``; it is masked out of every
            checkpoint, the model table and the logged hyperparameters either way.
        run: the name grouping this training's checkpoints (versions count up per run).
        table: model table name (``<table>_chunks`` holds the bytes).
        monitor, mode: the metric ranking checkpoints (``"min"``/``"max"``); None ranks by recency. Retention deletes
            only checkpoints this callback saved (this monitor and mode): a second callback on the same run, on
            another metric, keeps its own.
        save_top_k: how many of the best periodic checkpoints to keep (-1: all, 0: none).
        save_last: also keep a checkpoint named ``last`` replaced at every save (``"link"`` is not supported: there
            are no files to link).
        keep_last_n: in addition keep the n newest periodic checkpoints (every trigger is then saved).
        every_n_epochs, every_n_train_steps, train_time_interval, save_on_train_epoch_end, filename,
        save_weights_only, verbose: as in ``ModelCheckpoint`` (at most one trigger; default every epoch).
        chunk_size: bytes per chunk row.

    Load with ``ckpt_path="dm8:<run>:best"`` (or ``latest``, a version number, or a name such as ``last``).
    Lightning's own ``ckpt_path="last"`` looks for files and finds none here: use ``"dm8:<run>:latest"``.
    """

    def __init__(
        self,
        url: str,
        run: str,
        table: str = DEFAULT_TABLE,
        monitor: str | None = None,
        mode: str = "min",
        save_top_k: int = 1,
        save_last: bool = True,
        keep_last_n: int | None = None,
        every_n_epochs: int | None = None,
        every_n_train_steps: int | None = None,
        train_time_interval: dt.timedelta | None = None,
        save_on_train_epoch_end: bool | None = None,
        filename: str | None = None,
        save_weights_only: bool = False,
        verbose: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        check_run(run)
        check_table_name(table)
        check_mode(mode, "DM8Checkpoint")
        if save_last not in (True, False):
            raise InvalidInputError(
                f"DM8Checkpoint(save_last={save_last!r}): use True or False; 'link' makes a file system link, and "
                f"checkpoints in the database have no files"
            )
        retention = Retention(monitor=monitor, mode=mode, save_top_k=save_top_k, keep_last_n=keep_last_n)
        # ModelCheckpoint only saves what enters its own top k; the database keeps more when asked (the n newest,
        # or the k newest without a monitor), so then every trigger is saved and retention prunes.
        keeps_more = keep_last_n is not None or (monitor is None and save_top_k > 1)
        super().__init__(
            dirpath=checkpoint_dirpath(table, run),
            filename=filename,
            monitor=monitor,
            verbose=verbose,
            save_last=save_last,
            save_top_k=-1 if keeps_more else save_top_k,
            save_weights_only=save_weights_only,
            mode=mode,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=train_time_interval,
            every_n_epochs=every_n_epochs,
            save_on_train_epoch_end=save_on_train_epoch_end,
        )
        self.url = url
        self.run = run
        self.table = table
        self.chunk_size = chunk_size
        self.retention = retention
        self._io: DM8CheckpointIO | None = None
        self._saving: str | None = None

    @override
    def __repr__(self) -> str:
        return f"{type(self).__name__}(run={self.run!r}, table={self.table!r})"

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            run=self.run, table=self.table, monitor=self.monitor, mode=self.mode,
            every_n_train_steps=self._every_n_train_steps, every_n_epochs=self._every_n_epochs,
            train_time_interval=self._train_time_interval,
        )

    @property
    def checkpoint_io(self) -> DM8CheckpointIO:
        """The IO this callback installed (after ``setup``)."""
        if self._io is None:
            raise RuntimeError("DM8Checkpoint.checkpoint_io is available once the Trainer has called setup()")
        return self._io

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._io = install_checkpoint_io(trainer, self.url, self.table, self.chunk_size)
        self._io.add_retention(self.run, self.retention, self.table)
        super().setup(trainer, pl_module, stage)
        secrets = secrets_of(self._io.db)
        mask_logged_hparams(pl_module, secrets)
        datamodule = getattr(trainer, "datamodule", None)  # set by Lightning at fit/validate/test/predict time
        if datamodule is not None:
            mask_logged_hparams(datamodule, secrets)

    @override
    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        """ModelCheckpoint's one way to save (top k, every n, ``last``): noted, so that the header of this save
        records this callback's monitor and mode and not those of another callback of the same run."""
        self._saving = filepath
        try:
            super()._save_checkpoint(trainer, filepath)
        finally:
            self._saving = None

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Record what the model table's header needs: the model class and this run's monitored value.

        Every callback sees every save. The callback that is saving writes the run's entry; the others only fill it
        when nobody did (a save by hand, ``trainer.save_checkpoint``), so each periodic checkpoint carries the
        metric of the callback whose retention owns it.
        """
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        meta = checkpoint.setdefault(META_KEY, {})
        meta["model_class"] = f"{type(pl_module).__module__}.{type(pl_module).__qualname__}"
        runs = meta.setdefault("runs", {})
        if self._saving is None and self.run in runs:
            return
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        runs[self.run] = {
            "monitor": self.monitor,
            "monitor_value": finite_or_none(value),
            "monitor_mode": self.mode if self.monitor else None,
            "last_path": self.last_model_path or None,
        }

    @override
    def file_exists(self, filepath: Any, trainer: pl.Trainer) -> bool:
        """Whether a checkpoint of that name is in the database (ModelCheckpoint asks to add ``-v1`` suffixes)."""
        exists = False
        ref = parse_virtual_path(filepath)
        if trainer.is_global_zero and ref is not None and self._io is not None:
            store = self._io.store(ref.table)
            exists = any(c.name == ref.selector for c in _infos_or_empty(store, ref.run))
        return trainer.strategy.reduce_boolean_decision(exists, all=False)


def _infos_or_empty(store: CheckpointStore, run: str) -> list[CheckpointInfo]:
    try:
        return store.infos(run)
    except CheckpointNotFoundError:  # no model table yet
        return []


def install_checkpoint_io(trainer: pl.Trainer, url: str | Database, table: str, chunk_size: int) -> DM8CheckpointIO:
    """Make the strategy store checkpoints in the database, reusing a ``DM8CheckpointIO`` already there for the same
    database and keeping ``AsyncCheckpointIO`` asynchronous. Uses the public setter ``Strategy.checkpoint_io``."""
    strategy = trainer.strategy
    current = strategy.checkpoint_io
    inner = current.checkpoint_io if isinstance(current, AsyncCheckpointIO) else current
    wanted = as_database(url)
    if isinstance(inner, DM8CheckpointIO):
        if inner.db.sa_url != wanted.sa_url:
            raise LightningDM8Error(
                f"this Trainer already stores checkpoints in {inner.db.url}; one Trainer cannot also store them in "
                f"{wanted.url}: give every DM8Checkpoint of a Trainer the same url"
            )
        return inner
    if inner is not None and type(inner) is not TorchCheckpointIO:
        rank_zero_warn(f"DM8Checkpoint replaces the Trainer's checkpoint plugin {type(inner).__name__} by its own")
    io = DM8CheckpointIO(wanted, table=table, chunk_size=chunk_size)
    strategy.checkpoint_io = AsyncCheckpointIO(io) if isinstance(current, AsyncCheckpointIO) else io
    log.debug("checkpoints of this Trainer go to %s", wanted.url)
    return io
