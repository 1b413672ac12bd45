"""DM8DataModule: dataset tables -> block reads with prefetch -> LMDB cache -> batches, wired into Lightning.

The same module serves a Lightning ``Trainer``, Fabric and a plain PyTorch loop: rank and world size come from the
Trainer, else from an initialised ``torch.distributed`` process group, else from the ``rank``/``world_size``
arguments; the epoch from the Trainer, else from ``loader.set_epoch()`` (see :mod:`lightning_dm8.loading.ranks`).
Under a Trainer, :class:`LoaderMetrics` logs the loaders' throughput, cache hits, time waiting on data and database
seconds through Lightning's own logging.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, get_args

import lightning.pytorch as pl
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from tqdm.auto import tqdm
from typing_extensions import override

from lightning_dm8.db.engine import Database
from lightning_dm8.db.urls import readable_url, url_without_password
from lightning_dm8.errors import DatabaseUnavailableError, InvalidInputError
from lightning_dm8.loading.batches import Transform, resolve_callable, resolve_transform
from lightning_dm8.loading.cache import BlockCache, OnFull, cache_path, cached_info
from lightning_dm8.loading.dataset import BlockDataset
from lightning_dm8.loading.loader import DM8DataLoader
from lightning_dm8.loading.plan import PlanConfig
from lightning_dm8.loading.ranks import Ranks, check_explicit
from lightning_dm8.loading.source import LoadStats, describe
from lightning_dm8.tables.dataset_table import DatasetTable
from lightning_dm8.tables.query import write_query
from lightning_dm8.tables.reader import TableReader
from lightning_dm8.tables.record import select_columns
from lightning_dm8.tables.registry import DatasetInfo
from lightning_dm8.tables.sql_guard import single_select

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = "~/.cache/lightning_dm8"
"""Where the block caches live unless ``cache_dir`` says otherwise."""

Stage = Literal["train", "val", "test", "predict"]
_STAGE_TABLES: dict[str, tuple[Stage, ...]] = {
    "fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",),
}


class DM8DataModule(LightningDataModule):
    """Feeds Lightning from dataset tables: whole-block range queries, prefetched, cached locally in LMDB.

    Args:
        url: database URL (``sqlite:///x.db``, ``postgresql://user@host/db``, ``mysql://...``, ``dm://...``; the
            supported driver is picked for a bare scheme). Keep the password out of it: set
            ``LIGHTNING_DM8_PASSWORD`` instead.
        train_table, val_table, test_table, predict_table: dataset tables per stage (each optional).
        batch_size: rows per batch.
        num_workers: DataLoader worker processes. 0 (default) loads in the training process, with prefetch threads.
        persistent_workers: keep the worker processes (and their connections, cache handles and prefetch threads)
            from one epoch to the next; each epoch's plan still reaches them.
        block_size: rows per range query and per cache entry.
        prefetch_blocks: queries in flight ahead of the block being served (0 disables prefetch).
        io_threads: threads running those queries, each with its own connection.
        cache_dir: where the LMDB cache lives; None reads the database every epoch.
        shuffle: shuffle the training rows each epoch (validation, test and predict are never shuffled).
        seed: the shuffle seed; every order is a function of (seed, epoch, rank, worker).
        drop_last: drop the last incomplete batch (and keep ranks equal without padding).
        shuffle_buffer_blocks: blocks whose rows are mixed together in a cold (first) epoch.
        transform: per-sample callable (or ``"pkg.module.name"``) applied to features in every stage; for a record
            dataset it gets the sample's dict of columns, or give a dict ``{column: callable or dotted path}`` to
            transform each named column's value.
        train_transform: per-sample transform for training only (e.g. augmentation); defaults to ``transform``.
        collate_fn: callable (or dotted path) building a batch from a list of ``(features, label)`` (for a record
            dataset ``(sample dict, label)``, the label a dict when there are several targets).
        columns: read only these feature columns of a record dataset (every label column is read): the range query
            selects only them and the cache holds only them (a cache of its own per selection).
        pad_varlen: deliver variable-length columns as a :class:`~lightning_dm8.loading.batches.Padded`
            ``(values, lengths)`` pair, the rows padded to the longest with ``pad_value``, instead of a list of 1-D
            tensors.
        pad_value: the value padding fills in (``pad_varlen=True``).
        pin_memory: pin batches for faster host-to-GPU copies.
        source_queries: ``{table: SELECT ...}``; a listed table that does not exist yet is built by ``prepare_data``
            with ``write_query`` (its ``label`` column becomes the label).
        max_wait: seconds a reader keeps retrying a lost database connection before failing.
        cache_on_full: ``"error"`` (default) stops with a clear error when the cache disk is full; ``"skip"`` keeps
            training, reading uncached blocks from the database. Any other value is refused here.
        progress: show progress while the cache fills: a bar of the blocks cached (global rank 0) when no Trainer
            drives the loop, the share cached in the Trainer's progress bar (``data/train_cache_filled``) when one
            does; also the bar of ``source_queries`` tables being built.
        follow_versions: by default a run reads, in every epoch, rank and worker, the version of each table that
            was current when it set up (a replace during training changes nothing for it; name a kept older version
            as ``"table@3"``). With ``True``, each new train loader reads the then-current version: pair it with
            ``Trainer(reload_dataloaders_every_n_epochs=1)`` to follow the newest version at every epoch boundary.
        rank, world_size: this process's global rank and the number of ranks, for loops without a Trainer and without
            an initialised ``torch.distributed`` process group (each process of such a job passes its own). With a
            Trainer or a process group they are found, and given ones must agree.
        log_metrics: under a Trainer, log the loaders' metrics (:class:`LoaderMetrics`): per training step
            ``data/train_{rows_per_s,cache_hit,wait_share,db_seconds}_step``; per epoch ``data/{stage}_rows_per_s``,
            ``_cache_hit`` (%), ``_wait_share`` (% of the wall time spent waiting for batches), ``_db_seconds`` and
            ``_queries``. They reach ``trainer.callback_metrics`` and the loggers, and can be monitored.
        prog_bar_metrics: also show rows/s, cache hits and the waiting share in the Trainer's progress bar.

    Raises:
        InvalidInputError: a setting is out of range or not one of its choices (at construction), or a stage's
            table was not given (when its loader is asked for).
        TableNotFoundError, InvalidDatasetError: a table is missing, not a dataset, or broken (``prepare_data``,
            ``setup``, or the epoch that reads the broken row).
        DatabaseUnavailableError: the server cannot be reached within ``max_wait`` (a complete cache still serves).
        UnsafeCacheError, CacheFullError: the cache directory is not private, or its disk is full.
    """

    def __init__(
        self,
        url: str,
        train_table: str | None = None,
        val_table: str | None = None,
        test_table: str | None = None,
        predict_table: str | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        block_size: int = 256,
        prefetch_blocks: int = 4,
        io_threads: int = 2,
        cache_dir: str | None = DEFAULT_CACHE_DIR,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        shuffle_buffer_blocks: int = 8,
        transform: dict[str, str | Callable[..., Any]] | Callable[..., Any] | str | None = None,
        train_transform: dict[str, str | Callable[..., Any]] | Callable[..., Any] | str | None = None,
        collate_fn: Callable[..., Any] | str | None = None,
        pin_memory: bool = False,
        source_queries: dict[str, str] | None = None,
        max_wait: float = 60.0,
        cache_on_full: OnFull = "error",
        progress: bool = True,
        follow_versions: bool = False,
        persistent_workers: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        log_metrics: bool = True,
        prog_bar_metrics: bool = False,
        columns: list[str] | None = None,
        pad_varlen: bool = False,
        pad_value: float = 0,
    ) -> None:
        super().__init__()
        _check_options(batch_size, block_size, num_workers, prefetch_blocks, cache_on_full)
        check_explicit(rank, world_size)
        for table, sql in (source_queries or {}).items():
            try:
                single_select(sql)
            except InvalidInputError as exc:
                raise InvalidInputError(f"source_queries[{table!r}]: {exc}") from None
        self.db = open_database(url, "DM8DataModule: url")
        self.save_hyperparameters(ignore=["url", "transform", "train_transform", "collate_fn"])
        self.hparams["url"] = url_without_password(url)
        self.tables: dict[Stage, str | None] = {
            "train": train_table, "val": val_table, "test": test_table, "predict": predict_table,
        }
        self.batch_size, self.num_workers, self.block_size = batch_size, num_workers, block_size
        self.prefetch_blocks, self.io_threads = prefetch_blocks, io_threads
        self.cache_dir, self.shuffle, self.seed, self.drop_last = cache_dir, shuffle, seed, drop_last
        self.shuffle_buffer_blocks, self.pin_memory = shuffle_buffer_blocks, pin_memory
        self.transform = resolve_transform(transform, "transform")
        self.train_transform = resolve_transform(train_transform, "train_transform") or self.transform
        self.collate_fn = resolve_callable(collate_fn, "collate_fn")
        self.source_queries = dict(source_queries or {})
        self.max_wait, self.cache_on_full, self.progress = max_wait, cache_on_full, progress
        self.follow_versions, self.persistent_workers = follow_versions, persistent_workers
        self.rank, self.world_size = rank, world_size
        self.log_metrics, self.prog_bar_metrics = log_metrics, prog_bar_metrics
        self.columns = None if columns is None else list(columns)
        self.pad_varlen, self.pad_value = pad_varlen, pad_value
        # A local file (SQLite) is prepared on every node; a server once in all.
        self.prepare_data_per_node = self.db.backend.prepare_data_per_node
        self.datasets: dict[Stage, BlockDataset] = {}
        self.cache_complete: dict[Stage, bool] = {}
        self.epoch_stats: dict[Stage, LoadStats] = {}
        self._loaders: dict[Stage, DM8DataLoader] = {}
        self._settings: dict[Stage, tuple[Any, ...]] = {}
        self._versions: dict[Stage, DatasetInfo] = {}  # the version each stage reads (all its columns)
        self._pending_state: dict[str, Any] | None = None

    @property
    def loaders(self) -> dict[Stage, DM8DataLoader]:
        """The loader each stage handed out last (in this process)."""
        return dict(self._loaders)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable at any time (``ddp_spawn`` pickles it, perhaps after a loader was built here to look at a
        batch): loaders belong to the process that built them; the hooks build new ones after unpickling."""
        state = self.__dict__.copy()
        state["_loaders"] = {}
        return state

    @override
    def prepare_data(self) -> None:
        """Once per node (SQLite) or once in all (servers): build tables from ``source_queries``, check every table.

        With the database unreachable this passes (with a warning) when the cache holds every stage's table in
        full: such a run reads only the cache.
        """
        try:
            self._prepare_tables()
        except DatabaseUnavailableError as exc:
            tables = sorted({t for t in self.tables.values() if t})
            if not tables or any(self._cached_info(t) is None for t in tables):
                raise
            rank_zero_warn(f"{exc}; the cache in {self.cache_dir} holds all of {', '.join(tables)}, so this run "
                           f"reads only the cache (tables are not checked against the database)")

    def _prepare_tables(self) -> None:
        for table, sql in self.source_queries.items():
            try:
                DatasetTable(self.db, table).info()
            except LookupError:
                rank_zero_info(f"Building dataset table {table!r} from its source query")
                write_query(self.db, table, sql, progress=self.progress)
        for table in {t for t in self.tables.values() if t}:
            DatasetTable(self.db, table).validate()

    def ranks(self) -> Ranks:
        """This process's rank and world size: from the Trainer, else the ``torch.distributed`` process group, else
        the ``rank``/``world_size`` arguments, else a single process."""
        trainer = self.trainer
        found = (trainer.global_rank, trainer.world_size) if trainer is not None else None
        return Ranks.detect(found, self.rank, self.world_size)

    @override
    def setup(self, stage: str) -> None:
        """On every process: fix the shard plan of each stage's table (see :meth:`ranks`). A stage whose settings
        changed since its plan was made (``batch_size`` set by the batch-size finder, say) gets a new plan, reading
        the same version of its table."""
        ranks = self.ranks()
        self._attach_metrics()
        for name in _STAGE_TABLES.get(stage, ()):
            table = self.tables[name]
            if table is None:
                continue
            current = self.datasets.get(name)
            if current is not None and self._settings.get(name) == self._dataset_settings(name, ranks):
                continue
            version = self._versions.get(name) if current is not None else None
            if current is not None:
                self._drop(name)
            self.datasets[name] = self._build_dataset(name, table, ranks, version)

    def _attach_metrics(self) -> None:
        """Put :class:`LoaderMetrics` first among the Trainer's callbacks (once): its epoch metrics are logged
        before a checkpoint or early-stopping callback looks for them."""
        trainer = self.trainer
        if trainer is None or not self.log_metrics:
            return
        callbacks: list[Callback] = getattr(trainer, "callbacks", [])  # set by Lightning, not declared on Trainer
        if not any(isinstance(c, LoaderMetrics) and c.datamodule is self for c in callbacks):
            callbacks.insert(0, LoaderMetrics(self))

    def _dataset_settings(self, stage: Stage, ranks: Ranks) -> tuple[Any, ...]:
        """Everything a stage's dataset is built from besides its table's version: a change needs a new one."""
        train = stage == "train"
        return (self.batch_size, self.block_size, self.num_workers, self.seed, self.shuffle and train,
                self.drop_last and train, self.shuffle_buffer_blocks, ranks.rank, ranks.world_size,
                self.prefetch_blocks, self.io_threads, self.cache_dir, self.cache_on_full, self.max_wait,
                self.train_transform if train else self.transform, self.collate_fn, self.columns, self.pad_varlen,
                self.pad_value)

    def _drop(self, stage: Stage) -> None:
        """Forget a stage's dataset and loader (stopping its workers, closing what it opened in this process)."""
        loader = self._loaders.pop(stage, None)
        if loader is not None:
            loader.close()
        dataset = self.datasets.pop(stage, None)
        if dataset is not None:
            dataset.close()
        self._settings.pop(stage, None)
        self._versions.pop(stage, None)

    def _cache_path(self, table: str) -> Path | None:
        return cache_path(self.cache_dir, self.db, table, self.columns) if self.cache_dir is not None else None

    def _cached_info(self, table: str) -> DatasetInfo | None:
        path = self._cache_path(table)
        return cached_info(path, self.block_size) if path is not None else None

    def _resolve(self, table: str) -> DatasetInfo:
        """The table's registry entry from the database or, when it is unreachable, from a complete cache."""
        try:
            return DatasetTable(self.db, table).info(refresh=True)
        except DatabaseUnavailableError as exc:
            info = self._cached_info(table)
            if info is None:
                raise
            rank_zero_warn(f"{exc}; {table!r} ({info.row_count} rows) is read from its complete cache in "
                           f"{self._cache_path(table)}")
            return info

    def _build_dataset(self, stage: Stage, table: str, ranks: Ranks, info: DatasetInfo | None = None) -> BlockDataset:
        """The stage's dataset for this rank; ``info`` (the version to read) defaults to global rank 0's current
        version of ``table``, the same on every rank that can hear it."""
        if info is None:
            info = ranks.broadcast(self._resolve(table))
        self._versions[stage] = info
        train = stage == "train"
        transform = self.train_transform if train else self.transform
        info = _selected(info, self.columns, transform)
        plan = PlanConfig(
            n_rows=info.row_count, block_size=self.block_size, batch_size=self.batch_size, world_size=ranks.world_size,
            num_workers=max(1, self.num_workers), seed=self.seed, shuffle=self.shuffle and train,
            drop_last=self.drop_last and train, buffer_blocks=self.shuffle_buffer_blocks,
        )
        cache = None
        path = self._cache_path(table)
        if path is not None:
            cache = BlockCache(path, info.cache_lineage, self.block_size, math.ceil(info.row_count / self.block_size),
                               on_full=self.cache_on_full, info=info, rows=info.row_count)
        # True only if it holds on every rank (so every rank picks the same epoch order).
        self.cache_complete[stage] = ranks.all_true(cache is not None and cache.is_complete())
        if cache is not None:
            cache.close()
        self._settings[stage] = self._dataset_settings(stage, ranks)
        return BlockDataset(
            TableReader(self.db, info, max_wait=self.max_wait), plan, ranks.rank, cache,
            prefetch_blocks=self.prefetch_blocks, io_threads=self.io_threads, transform=transform,
            collate=self.collate_fn, pad_value=self.pad_value if self.pad_varlen else None,
        )

    def _loader(self, stage: Stage) -> DM8DataLoader:
        table = self.tables[stage]
        if table is None:
            raise InvalidInputError(
                f"no {stage}_table was given to DM8DataModule; set {stage}_table to a dataset table"
            )
        self.setup({"train": "fit", "val": "validate"}.get(stage, stage))  # builds the stage's plan if needed
        previous = self._loaders.pop(stage, None)
        if previous is not None:
            previous.close()
        trainer = self.trainer
        epoch_fn = _epoch_of(trainer) if trainer is not None and stage == "train" else None
        loader = DM8DataLoader(
            self.datasets[stage], num_workers=self.num_workers, pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers, epoch_fn=epoch_fn, ranks=self.ranks(),
            cache_complete=self.cache_complete.get(stage, False), track_row_ids=stage == "predict",
            on_epoch_end=_Recorder(self, stage), progress=self.progress and trainer is None,
        )
        if stage == "train" and self._pending_state is not None:
            loader.load_state_dict(self._pending_state)
            self._pending_state = None
        self._loaders[stage] = loader
        return loader

    def _record(self, stage: Stage, stats: LoadStats) -> None:
        """Keep a finished epoch's statistics; a log record (not a print, which would break a progress bar)."""
        self.epoch_stats[stage] = stats
        log.info("%s data (%s): %s", stage, self.tables[stage], describe({**stats.as_dict(), **stats.rates()}))

    def fill_cache(self, stages: Iterable[Stage] = ("train",)) -> dict[Stage, dict[str, float]]:
        """Read every block of each stage's table that the cache does not hold yet into the cache (prefetched, with
        a progress bar when ``progress`` is on); returns what each stage cost (queries, rows from the database...).

        Raises:
            InvalidInputError: there is no cache (``cache_dir=None``) or no table for a stage.
        """
        if self.cache_dir is None:
            raise InvalidInputError("DM8DataModule.fill_cache: there is no cache to fill (cache_dir is None)")
        costs: dict[Stage, dict[str, float]] = {}
        for stage in stages:
            if self.tables[stage] is None:
                raise InvalidInputError(f"DM8DataModule.fill_cache: no {stage}_table was given")
            self.setup({"train": "fit", "val": "validate"}.get(stage, stage))
            dataset = self.datasets[stage]
            missing = dataset.missing_blocks()
            with tqdm(total=len(missing), desc=f"filling the cache of {self.tables[stage]!r}", unit="blocks",
                      disable=not self.progress) as bar:
                costs[stage] = dataset.fill(missing, on_block=bar.update)
            self.cache_complete[stage] = dataset.cache_is_complete()
        return costs

    @override
    def train_dataloader(self) -> DM8DataLoader:
        if self.follow_versions and "train" in self.datasets:
            current = self.ranks().broadcast(self._resolve(self.tables["train"] or ""))
            if current.version != self.datasets["train"].reader.info.version:
                rank_zero_info(f"train data: following {current.name!r} to version {current.version}")
                self._drop("train")
        return self._loader("train")

    @override
    def val_dataloader(self) -> DM8DataLoader:
        return self._loader("val")

    @override
    def test_dataloader(self) -> DM8DataLoader:
        return self._loader("test")

    @override
    def predict_dataloader(self) -> DM8DataLoader:
        return self._loader("predict")

    @override
    def state_dict(self) -> dict[str, Any]:
        """The training loader's position (Lightning also stores it with the fit loop; either restores it)."""
        loader = self._loaders.get("train")
        return {"train_loader": loader.state_dict()} if loader is not None else {}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_state = state_dict.get("train_loader")

    @override
    def teardown(self, stage: str) -> None:
        """Stop the stage's worker processes; close connections and cache handles opened in this process."""
        for name in _STAGE_TABLES.get(stage, ()):
            loader = self._loaders.get(name)
            if loader is not None:
                loader.close()
            dataset = self.datasets.get(name)
            if dataset is not None:
                dataset.close()

    @override
    def on_exception(self, exception: BaseException) -> None:
        for stage in ("fit", "test", "predict"):
            self.teardown(stage)


_SUMMED = ("queries", "db_seconds")
"""Epoch counts logged as the sum over ranks (as rows/s: the throughput of all ranks together); the other counts
are in ``DM8DataModule.epoch_stats``."""
_AVERAGED = ("cache_hit", "wait_share")
"""Epoch percentages logged as the mean over ranks."""
_SHOWN = ("rows_per_s", "cache_hit", "wait_share")
"""What ``prog_bar_metrics=True`` puts in the progress bar."""


class LoaderMetrics(Callback):
    """Logs a :class:`DM8DataModule`'s loader metrics through the LightningModule's ``log`` (so they reach
    ``trainer.callback_metrics``, the loggers and, with ``prog_bar_metrics``, the progress bar, and can be monitored
    by checkpoint and early-stopping callbacks). The data module adds it to the Trainer's callbacks in ``setup``.

    Per training step ``data/train_{rows_per_s,cache_hit,wait_share,db_seconds}_step`` (the batches since the
    previous step); at the end of each training, validation and test epoch ``data/{stage}_{name}``: ``rows_per_s``,
    ``cache_hit`` (% of the rows read that came from the cache), ``wait_share`` (% of the epoch's wall time the loop
    spent waiting for batches), ``db_seconds`` (spent in queries) and ``queries``. Epoch values are summed over ranks
    (rows/s: the throughput of all ranks together; percentages are averaged). The other counts are in
    ``DM8DataModule.epoch_stats``. While a cold epoch fills the cache and the data module's
    ``progress`` is on, ``data/train_cache_filled`` (% of the table's blocks cached) shows in the progress bar.
    """

    def __init__(self, datamodule: DM8DataModule) -> None:
        self.datamodule = datamodule

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loader = self.datamodule.loaders.get("train")
        if loader is None:
            return
        window = loader.take_window()
        values = {**window.rates(), "db_seconds": window.db_seconds}
        shown = self.datamodule.prog_bar_metrics
        for name, value in values.items():
            pl_module.log(f"data/train_{name}_step", float(value), on_step=True, on_epoch=False,
                          prog_bar=shown and name in _SHOWN, batch_size=max(1, window.rows))
        if self.datamodule.progress and loader.mode == "cold" and loader.block_dataset.cache is not None:
            pl_module.log("data/train_cache_filled", 100.0 * loader.cache_filled(), on_step=True, on_epoch=False,
                          prog_bar=True, logger=False, batch_size=max(1, window.rows))

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: pl.LightningModule) -> None:
        self._log_epoch("train", pl_module)

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log_epoch("val", pl_module)

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: pl.LightningModule) -> None:
        self._log_epoch("test", pl_module)

    def _log_epoch(self, stage: Stage, pl_module: pl.LightningModule) -> None:
        loader = self.datamodule.loaders.get(stage)
        if loader is None:
            return
        stats = loader.stats
        counts = stats.as_dict()
        values = {**{k: counts[k] for k in _SUMMED}, **stats.rates()}
        shown = self.datamodule.prog_bar_metrics
        for name, value in values.items():
            pl_module.log(f"data/{stage}_{name}", float(value), on_step=False, on_epoch=True, sync_dist=True,
                          reduce_fx="mean" if name in _AVERAGED else "sum", prog_bar=shown and name in _SHOWN)


class _Recorder:
    """Hands a loader's finished epochs to its data module, which it does not keep alive: without a reference cycle a
    dropped loader is freed at once, and its persistent workers shut down cleanly (a cycle left for the garbage
    collector closes their queues before the workers are told to stop, and each then takes torch's 5 s timeout)."""

    def __init__(self, datamodule: DM8DataModule, stage: Stage) -> None:
        self.datamodule = weakref.ref(datamodule)
        self.stage: Stage = stage

    def __call__(self, stats: LoadStats) -> None:
        datamodule = self.datamodule()
        if datamodule is not None:
            datamodule._record(self.stage, stats)


def open_database(url: str, what: str) -> Database:
    """The database at ``url``; text that is not a database URL at all is refused naming ``what`` and the forms.

    Raises:
        InvalidInputError: ``url`` does not parse as a URL.
    """
    readable_url(url, what)
    return Database(url)


def _selected(info: DatasetInfo, columns: list[str] | None, transform: Transform | None) -> DatasetInfo:
    """``info`` narrowed to the feature columns ``columns`` (a reader of it selects only those), after checking that a
    transform per column names columns that are read.

    Raises:
        InvalidInputError: a column is not one of the dataset's (the message lists them), or a transform names one.
    """
    try:
        narrowed = dataclasses.replace(info, codec=select_columns(info.codec, columns))
    except InvalidInputError as exc:
        raise InvalidInputError(f"DM8DataModule: dataset {info.name!r}: {exc}") from None
    if isinstance(transform, dict) and info.codec.kind != "record":
        raise InvalidInputError(f"DM8DataModule: a transform per column ({sorted(transform)}) needs a dataset of "
                                f"several columns; {info.name!r} has a single feature: pass one callable")
    if isinstance(transform, dict):
        read = [name for name, _ in narrowed.codec.fields]
        unknown = sorted(set(transform) - set(read))
        if unknown:
            raise InvalidInputError(f"DM8DataModule: the transform names column(s) {unknown} that {info.name!r} does "
                                    f"not read; the columns read are {read}")
    return narrowed


def _epoch_of(trainer: Trainer) -> Callable[[], int]:
    """The training loader asks for the epoch each time it starts one (the order is a function of it)."""
    return lambda: trainer.current_epoch


def _check_options(
    batch_size: int, block_size: int, num_workers: int, prefetch_blocks: int, cache_on_full: str
) -> None:
    """Refuse numbers and choices the loader cannot honour, naming the setting (before anything is opened)."""
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if value < 1:
            raise InvalidInputError(f"DM8DataModule: {name} must be at least 1; got {value}")
    for name, value in (("num_workers", num_workers), ("prefetch_blocks", prefetch_blocks)):
        if value < 0:
            raise InvalidInputError(f"DM8DataModule: {name} cannot be negative; got {value}")
    choices = get_args(OnFull)
    if cache_on_full not in choices:
        raise InvalidInputError(
            f"DM8DataModule: cache_on_full must be one of {', '.join(map(repr, choices))} ('error' stops when the "
            f"cache disk is full, 'skip' keeps training from the database); got {cache_on_full!r}"
        )
