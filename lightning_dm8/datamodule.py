"""DM8DataModule: dataset tables -> block reads with prefetch -> LMDB cache -> batches, wired into Lightning."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from typing_extensions import override

from lightning_dm8.db.engine import Database
from lightning_dm8.db.urls import url_without_password
from lightning_dm8.errors import DatabaseUnavailableError, InvalidInputError
from lightning_dm8.loading.batches import resolve_callable
from lightning_dm8.loading.cache import BlockCache, OnFull, cache_path, cached_info
from lightning_dm8.loading.dataset import BlockDataset
from lightning_dm8.loading.loader import DM8DataLoader
from lightning_dm8.loading.plan import PlanConfig
from lightning_dm8.loading.source import LoadStats, describe
from lightning_dm8.tables.dataset_table import DatasetTable
from lightning_dm8.tables.query import write_query
from lightning_dm8.tables.reader import TableReader
from lightning_dm8.tables.sql_guard import single_select
from lightning_dm8.tables.registry import DatasetInfo

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
        block_size: rows per range query and per cache entry.
        prefetch_blocks: queries in flight ahead of the block being served (0 disables prefetch).
        io_threads: threads running those queries, each with its own connection.
        cache_dir: where the LMDB cache lives; None reads the database every epoch.
        shuffle: shuffle the training rows each epoch (validation, test and predict are never shuffled).
        seed: the shuffle seed; every order is a function of (seed, epoch, rank, worker).
        drop_last: drop the last incomplete batch (and keep ranks equal without padding).
        shuffle_buffer_blocks: blocks whose rows are mixed together in a cold (first) epoch.
        transform: per-sample callable (or ``"pkg.module.name"``) applied to features in every stage.
        train_transform: per-sample callable for training only (e.g. augmentation); defaults to ``transform``.
        collate_fn: callable (or dotted path) building a batch from a list of ``(features, label)``.
        pin_memory: pin batches for faster host-to-GPU copies.
        source_queries: ``{table: SELECT ...}``; a listed table that does not exist yet is built by ``prepare_data``
            with ``write_query`` (its ``label`` column becomes the label).
        max_wait: seconds a reader keeps retrying a lost database connection before failing.
        cache_on_full: ``"error"`` (default) stops with a clear error when the cache disk is full; ``"skip"`` keeps
            training, reading uncached blocks from the database. Any other value is refused here.
        progress: show a progress bar while the cache fills.
        follow_versions: by default a run reads, in every epoch, rank and worker, the version of each table that
            was current when it set up (a replace during training changes nothing for it; name a kept older version
            as ``"table@3"``). With ``True``, each new train loader reads the then-current version: pair it with
            ``Trainer(reload_dataloaders_every_n_epochs=1)`` to follow the newest version at every epoch boundary.

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
        cache_dir: str | None = "~/.cache/lightning_dm8",
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        shuffle_buffer_blocks: int = 8,
        transform: Callable[..., Any] | str | None = None,
        train_transform: Callable[..., Any] | str | None = None,
        collate_fn: Callable[..., Any] | str | None = None,
        pin_memory: bool = False,
        source_queries: dict[str, str] | None = None,
        max_wait: float = 60.0,
        cache_on_full: OnFull = "error",
        progress: bool = True,
        follow_versions: bool = False,
    ) -> None:
        super().__init__()
        _check_options(batch_size, block_size, num_workers, prefetch_blocks, cache_on_full)
        for table, sql in (source_queries or {}).items():
            try:
                single_select(sql)
            except InvalidInputError as exc:
                raise InvalidInputError(f"source_queries[{table!r}]: {exc}") from None
        self.db = Database(url)
        self.save_hyperparameters(ignore=["url", "transform", "train_transform", "collate_fn"])
        self.hparams["url"] = url_without_password(url)
        self.tables: dict[Stage, str | None] = {
            "train": train_table, "val": val_table, "test": test_table, "predict": predict_table,
        }
        self.batch_size, self.num_workers, self.block_size = batch_size, num_workers, block_size
        self.prefetch_blocks, self.io_threads = prefetch_blocks, io_threads
        self.cache_dir, self.shuffle, self.seed, self.drop_last = cache_dir, shuffle, seed, drop_last
        self.shuffle_buffer_blocks, self.pin_memory = shuffle_buffer_blocks, pin_memory
        self.transform = resolve_callable(transform, "transform")
        self.train_transform = resolve_callable(train_transform, "train_transform") or self.transform
        self.collate_fn = resolve_callable(collate_fn, "collate_fn")
        self.source_queries = dict(source_queries or {})
        self.max_wait, self.cache_on_full, self.progress = max_wait, cache_on_full, progress
        self.follow_versions = follow_versions
        # A local file (SQLite) is prepared on every node; a server once in all.
        self.prepare_data_per_node = self.db.backend.prepare_data_per_node
        self.datasets: dict[Stage, BlockDataset] = {}
        self.cache_complete: dict[Stage, bool] = {}
        self.epoch_stats: dict[Stage, LoadStats] = {}
        self._loaders: dict[Stage, DM8DataLoader] = {}
        self._pending_state: dict[str, Any] | None = None

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

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    @override
    def setup(self, stage: str) -> None:
        """On every process: fix the shard plan of each stage's table (rank and world size from the Trainer)."""
        rank, world = self._rank_world()
        for name in _STAGE_TABLES.get(stage, ()):
            table = self.tables[name]
            if table is None or name in self.datasets:
                continue
            self.datasets[name] = self._build_dataset(name, table, rank, world)

    def _cache_path(self, table: str) -> Path | None:
        return cache_path(self.cache_dir, self.db, table) if self.cache_dir is not None else None

    def _cached_info(self, table: str) -> DatasetInfo | None:
        path = self._cache_path(table)
        return cached_info(path, self.block_size) if path is not None else None

    def _table_info(self, table: str) -> DatasetInfo:
        """The version this run reads: global rank 0's current one, the same on every rank."""
        info = self._resolve(table)
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            info = trainer.strategy.broadcast(info, src=0)
        return info

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

    def _build_dataset(self, stage: Stage, table: str, rank: int, world: int) -> BlockDataset:
        info = self._table_info(table)
        train = stage == "train"
        plan = PlanConfig(
            n_rows=info.row_count, block_size=self.block_size, batch_size=self.batch_size, world_size=world,
            num_workers=max(1, self.num_workers), seed=self.seed, shuffle=self.shuffle and train,
            drop_last=self.drop_last and train, buffer_blocks=self.shuffle_buffer_blocks,
        )
        cache = None
        path = self._cache_path(table)
        if path is not None:
            cache = BlockCache(path, info.cache_lineage, self.block_size, math.ceil(info.row_count / self.block_size),
                               on_full=self.cache_on_full, info=info, rows=info.row_count)
        self.cache_complete[stage] = self._agree(cache is not None and cache.is_complete())
        if cache is not None:
            cache.close()
        return BlockDataset(
            TableReader(self.db, info, max_wait=self.max_wait), plan, rank, cache,
            prefetch_blocks=self.prefetch_blocks, io_threads=self.io_threads,
            transform=self.train_transform if train else self.transform, collate=self.collate_fn,
        )

    def _agree(self, value: bool) -> bool:
        """True only if it holds on every rank (so every rank picks the same epoch order)."""
        if self.trainer is None or self.trainer.world_size == 1:
            return value
        return bool(self.trainer.strategy.reduce_boolean_decision(value, all=True))

    def _loader(self, stage: Stage) -> DM8DataLoader:
        if stage not in self.datasets:
            table = self.tables[stage]
            if table is None:
                raise InvalidInputError(
                    f"no {stage}_table was given to DM8DataModule; set {stage}_table to a dataset table"
                )
            self.setup({"train": "fit", "val": "validate"}.get(stage, stage))
        trainer = self.trainer
        epoch_fn = _epoch_of(trainer) if trainer is not None and stage == "train" else None
        loader = DM8DataLoader(
            self.datasets[stage], num_workers=self.num_workers, pin_memory=self.pin_memory, epoch_fn=epoch_fn,
            cache_complete=self.cache_complete.get(stage, False), track_row_ids=stage == "predict",
            on_epoch_end=functools.partial(self._record, stage),
        )
        if stage == "train" and self._pending_state is not None:
            loader.load_state_dict(self._pending_state)
            self._pending_state = None
        self._loaders[stage] = loader
        return loader

    def _record(self, stage: Stage, stats: LoadStats) -> None:
        self.epoch_stats[stage] = stats
        trainer = self.trainer
        values = stats.as_dict()
        if trainer is not None and trainer.logger is not None:
            trainer.logger.log_metrics({f"data/{stage}_{k}": float(v) for k, v in values.items()},
                                       step=trainer.global_step)
        rank_zero_info(f"{stage} data ({self.tables[stage]}): {describe(values)}")

    @override
    def train_dataloader(self) -> DM8DataLoader:
        if self.follow_versions and "train" in self.datasets:
            current = self._table_info(self.tables["train"] or "")
            if current.version != self.datasets["train"].reader.info.version:
                rank_zero_info(f"train data: following {current.name!r} to version {current.version}")
                self.datasets.pop("train").close()
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
        """Close connections and cache handles opened in this process."""
        for name in _STAGE_TABLES.get(stage, ()):
            dataset = self.datasets.get(name)
            if dataset is not None:
                dataset.close()

    @override
    def on_exception(self, exception: BaseException) -> None:
        for stage in ("fit", "test", "predict"):
            self.teardown(stage)


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
