"""DM8DataModule under a real Trainer: mid-epoch resume through checkpoints, loss curves identical to an in-memory
DataLoader, per-epoch load statistics, cache invalidation when a table changes, and clear configuration errors."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from loading.record_rows import record_columns, write_record
from loading.support import (
    RecordingModule,
    assert_exactly_once,
    epoch_batches,
    epoch_ids,
    features_for,
    make_dm,
    quiet_trainer,
    write_labelled,
)
from torch.utils.data import DataLoader, TensorDataset

import lightning_dm8
from lightning_dm8 import InvalidDatasetError, InvalidInputError, TableNotFoundError
from lightning_dm8.datamodule import DM8DataModule
from lightning_dm8.loading.batches import Padded
from lightning_dm8.tables.dataset_table import DatasetTable

N_ROWS = 1003
BATCH = 32
BATCHES = 32  # ceil(1003 / 32)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dm.db'}"


class StatsPerEpoch(Callback):
    """Copies the DataModule's statistics of the training epoch that just ended."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.epochs.append(trainer.datamodule.epoch_stats["train"].as_dict())


class MemoryLogger(Logger):
    """Keeps every logged metric in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append(dict(metrics))


# -- mid-epoch resume through Lightning checkpoints -------------------------------------------------------------


def interrupted_run(url: str, tmp_path: Path, steps: int, **options: Any) -> tuple[RecordingModule, Path]:
    """Train a little past ``steps`` batches; return the model and the checkpoint written right after batch ``steps``
    (inside the epoch, as a periodic checkpoint of a run that is then killed)."""
    model = RecordingModule()
    every = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=steps, save_top_k=-1)
    trainer = quiet_trainer(max_steps=steps + 3, callbacks=[every], enable_checkpointing=True)
    trainer.fit(model, datamodule=make_dm(url, "rows", **options))
    return model, tmp_path / "ckpt" / f"epoch={steps // BATCHES}-step={steps}.ckpt"


@pytest.mark.slow
# Lightning's note that callbacks are restored from the checkpoint: what this test relies on.
@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`, callbacks")
@pytest.mark.parametrize("num_workers, cached, steps", [(0, False, 7), (2, False, 7), (0, True, 37), (2, True, 37)])
def test_fit_resumed_mid_epoch_sees_the_rest_of_that_epoch(sqlite_url, tmp_path, num_workers, cached, steps) -> None:
    """Lightning asks a loader with ``len()`` for no batch ahead, so the checkpoint's position is exact: the resumed
    run neither skips nor repeats a row (with cache, the interrupted epoch is the second, warm one)."""
    write_labelled(sqlite_url, "rows", N_ROWS)
    options = {"cache_dir": tmp_path / "cache" if cached else None, "num_workers": num_workers, "seed": 4}
    first, path = interrupted_run(sqlite_url, tmp_path, steps, **options)

    resumed = RecordingModule()
    dm = make_dm(sqlite_url, "rows", **options)
    quiet_trainer(max_epochs=steps // BATCHES + 1).fit(resumed, datamodule=dm, ckpt_path=path)
    assert len(resumed.seen) == BATCHES - steps % BATCHES
    epoch_start = steps // BATCHES * BATCHES
    assert_exactly_once(np.concatenate(first.seen[epoch_start:steps] + resumed.seen), N_ROWS)
    if cached:
        assert dm.epoch_stats["train"].queries == 0


def test_a_checkpoint_after_max_steps_resumes_with_a_whole_new_epoch(sqlite_url, tmp_path) -> None:
    """Lightning counts an epoch that stopped at ``max_steps`` as finished; the loader follows its epoch counter and
    delivers the next epoch complete (not the unused rest of the stopped one)."""
    write_labelled(sqlite_url, "rows", N_ROWS)
    first = RecordingModule()
    trainer = quiet_trainer(max_steps=7)
    trainer.fit(first, datamodule=make_dm(sqlite_url, "rows"))
    trainer.save_checkpoint(tmp_path / "stopped.ckpt")
    resumed = RecordingModule()
    again = quiet_trainer(max_epochs=2)
    again.fit(resumed, datamodule=make_dm(sqlite_url, "rows"), ckpt_path=tmp_path / "stopped.ckpt")
    assert len(resumed.seen) == BATCHES
    ids = np.concatenate(resumed.seen)
    assert_exactly_once(ids, N_ROWS)
    assert not np.array_equal(ids[: 7 * BATCH], np.concatenate(first.seen))


# -- loss curves -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_losses_equal_an_in_memory_dataloader(sqlite_url: str) -> None:
    n = 300
    features = write_labelled(sqlite_url, "rows", n)
    runs = []
    for loader_or_dm in (make_dm(sqlite_url, "rows", shuffle=False, batch_size=BATCH),
                         DataLoader(TensorDataset(torch.from_numpy(features), torch.arange(n)), batch_size=BATCH)):
        torch.manual_seed(123)
        model = RecordingModule()
        if isinstance(loader_or_dm, DM8DataModule):
            quiet_trainer(max_epochs=2).fit(model, datamodule=loader_or_dm)
        else:
            quiet_trainer(max_epochs=2).fit(model, train_dataloaders=loader_or_dm)
        runs.append(model)
    from_db, in_memory = runs
    assert len(from_db.losses) == len(in_memory.losses) == 2 * 10
    assert all(torch.equal(a, b) for a, b in zip(from_db.losses, in_memory.losses, strict=True))
    assert torch.equal(from_db.layer.weight, in_memory.layer.weight)
    assert all(np.array_equal(a, b) for a, b in zip(from_db.seen, in_memory.seen, strict=True))


# -- observability -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "nocache"])
def test_epoch_stats_show_where_rows_came_from(sqlite_url, tmp_path, cached) -> None:
    write_labelled(sqlite_url, "rows", N_ROWS)
    cache_dir = tmp_path / "cache" if cached else None
    stats, logger = StatsPerEpoch(), MemoryLogger()
    quiet_trainer(max_epochs=2, callbacks=[stats], logger=logger).fit(
        RecordingModule(), datamodule=make_dm(sqlite_url, "rows", cache_dir))
    cold, second = stats.epochs
    assert cold["queries"] == 16 and cold["rows_from_db"] == N_ROWS and cold["rows_from_cache"] == 0
    assert cold["bytes_from_db"] > 0 and cold["db_seconds"] > 0
    if cached:
        assert (second["queries"], second["rows_from_db"], second["rows_from_cache"]) == (0, 0, N_ROWS)
    else:
        assert second == {**second, "queries": 16, "rows_from_db": N_ROWS, "rows_from_cache": 0}
    logged = [m for m in logger.metrics if "data/train_queries" in m]
    assert [m["data/train_queries"] for m in logged] == [cold["queries"], second["queries"]]

    later = StatsPerEpoch()
    rerun = make_dm(sqlite_url, "rows", cache_dir)
    quiet_trainer(max_epochs=1, callbacks=[later]).fit(RecordingModule(), datamodule=rerun)
    assert later.epochs[0]["queries"] == (0 if cached else 16)
    assert later.epochs[0]["rows_from_cache"] == (N_ROWS if cached else 0)


# -- what Lightning sees: no warning about the loader, batch indices for prediction writers -----------------------


LOADER_WARNINGS = ("has `__len__` defined", "Couldn't infer the batch indices", "does not have many workers")


class RowIdWriter(BasePredictionWriter):
    """Keeps the ``batch_indices`` Lightning hands a prediction writer, and the labels (row ids) of each batch."""

    def __init__(self) -> None:
        super().__init__("batch")
        self.seen: list[tuple[list[int], list[int]]] = []

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any, batch: Any,
                           batch_idx: int, dataloader_idx: int = 0) -> None:
        self.seen.append((list(batch_indices), batch[1].tolist()))


class Predicting(RecordingModule):
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0].float())


@pytest.mark.parametrize("num_workers", [0, 2])
def test_lightning_sees_an_exact_loader_and_gets_the_row_ids_of_predictions(sqlite_url, tmp_path, num_workers,
                                                                            recwarn) -> None:
    write_labelled(sqlite_url, "rows", N_ROWS)
    dm = DM8DataModule(sqlite_url, train_table="rows", predict_table="rows", batch_size=BATCH, num_workers=num_workers,
                       cache_dir=str(tmp_path / "cache"), progress=False)
    quiet_trainer(max_epochs=1).fit(RecordingModule(), datamodule=dm)
    writer = RowIdWriter()
    quiet_trainer(callbacks=[writer]).predict(Predicting(), datamodule=dm, return_predictions=False)
    assert len(writer.seen) == BATCHES and all(ids == labels for ids, labels in writer.seen)
    assert_exactly_once(np.concatenate([ids for ids, _ in writer.seen]), N_ROWS)
    assert not [str(w.message) for w in recwarn if any(text in str(w.message) for text in LOADER_WARNINGS)]


# -- cache invalidation ------------------------------------------------------------------------------------------


def one_epoch(url: str, table: str, cache_dir: Path, **kwargs: Any) -> tuple[DM8DataModule, np.ndarray, np.ndarray]:
    dm = make_dm(url, table, cache_dir, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    batches = epoch_batches(dm.train_dataloader())
    dm.teardown("fit")
    return dm, np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def test_a_rewritten_table_is_never_served_from_a_stale_cache(db_url, table_name, tmp_path) -> None:
    cache = tmp_path / "cache"
    old = write_labelled(db_url, table_name, 200)
    dm, _, _ = one_epoch(db_url, table_name, cache)
    assert dm.epoch_stats["train"].rows_from_db == 200
    dm, x, ids = one_epoch(db_url, table_name, cache)
    np.testing.assert_array_equal(x, old[ids])
    assert dm.epoch_stats["train"].rows_from_cache == 200 and dm.epoch_stats["train"].queries == 0

    new = write_labelled(db_url, table_name, 200, seed=1, if_exists="replace")
    dm, x, ids = one_epoch(db_url, table_name, cache)
    np.testing.assert_array_equal(x, new[ids])
    assert dm.epoch_stats["train"].rows_from_db == 200 and dm.epoch_stats["train"].rows_from_cache == 0

    extra = features_for(37, seed=2)
    lightning_dm8.write_arrays(db_url, table_name, extra, np.arange(200, 237), if_exists="append", progress=False)
    dm, x, ids = one_epoch(db_url, table_name, cache)
    assert_exactly_once(ids, 237)
    np.testing.assert_array_equal(x, np.concatenate([new, extra])[ids])
    # An append keeps the lineage: only the last partial block (rows 192..199) and the new rows are read again.
    full_rows = 200 // dm.block_size * dm.block_size
    assert dm.epoch_stats["train"].rows_from_db == 237 - full_rows
    assert dm.epoch_stats["train"].rows_from_cache == full_rows


# -- configuration errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting, message", [
    ({"batch_size": 0}, "batch_size must be at least 1; got 0"),
    ({"block_size": -3}, "block_size must be at least 1; got -3"),
    ({"num_workers": -1}, "num_workers cannot be negative; got -1"),
    ({"prefetch_blocks": -2}, "prefetch_blocks cannot be negative; got -2"),
    ({"cache_on_full": "ignore"}, "cache_on_full must be one of 'error', 'skip' .*; got 'ignore'"),
])
def test_bad_settings_fail_at_construction(sqlite_url, setting, message) -> None:
    with pytest.raises(InvalidInputError, match=f"DM8DataModule: {message}"):
        make_dm(sqlite_url, "rows", **setting)


def test_data_is_prepared_once_per_node_only_for_a_local_file(sqlite_url) -> None:
    assert make_dm(sqlite_url, "rows").prepare_data_per_node is True
    server = DM8DataModule("postgresql+psycopg://user@db.invalid/x", train_table="rows")  # nothing is opened here
    assert server.prepare_data_per_node is False


def test_a_missing_table_fails_in_prepare_data(db_url, table_name) -> None:
    dm = make_dm(db_url, table_name)
    with pytest.raises(TableNotFoundError, match=f"{table_name}.*does not exist"):
        dm.prepare_data()


def test_a_table_with_gaps_in_row_ids_fails_in_prepare_data(db_url, table_name) -> None:
    write_labelled(db_url, table_name, 50)
    physical = DatasetTable(db_url, table_name).info().table_name  # the dataset's name may be a view over it
    engine = sa.create_engine(lightning_dm8.Database(db_url).sa_url)
    with engine.begin() as conn:
        table = sa.Table(physical, sa.MetaData(), autoload_with=conn)
        conn.execute(table.delete().where(table.c.row_id == 7))
    engine.dispose()
    with pytest.raises(InvalidDatasetError, match=f"{table_name}.*not dense.*found 49 rows"):
        make_dm(db_url, table_name).prepare_data()


def test_asking_for_a_loader_of_a_stage_without_table(sqlite_url) -> None:
    dm = DM8DataModule(sqlite_url, val_table="rows", progress=False)
    with pytest.raises(ValueError, match="no train_table was given"):
        dm.train_dataloader()


def test_resume_with_other_num_workers_names_the_change(sqlite_url) -> None:
    write_labelled(sqlite_url, "rows", 100)
    dm = make_dm(sqlite_url, "rows", num_workers=0)
    it = iter(dm.train_dataloader())
    next(it)
    state = dm.state_dict()
    other = make_dm(sqlite_url, "rows", num_workers=2)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="cannot resume mid-epoch.*num_workers: saved 1 now 2"):
        other.train_dataloader()


def test_datamodule_pickles_after_setup_and_keeps_loading(sqlite_url, tmp_path) -> None:
    """ddp_spawn and spawned workers pickle the DataModule: no connection or LMDB handle may travel along."""
    write_labelled(sqlite_url, "rows", 100)
    dm = make_dm(sqlite_url, "rows", tmp_path / "cache", shuffle=True)
    dm.setup("fit")
    first = epoch_ids(dm.train_dataloader())
    copy = pickle.loads(pickle.dumps(dm))
    assert_exactly_once(epoch_ids(copy.train_dataloader()), 100)
    np.testing.assert_array_equal(epoch_ids(copy.train_dataloader()), first)


def test_record_settings_are_hyperparameters_and_take_effect_in_the_next_loader(sqlite_url) -> None:
    """``columns``, ``pad_varlen`` and ``pad_value`` are saved with the hyperparameters, and changing one gives the
    next loader a dataset built with it."""
    features, targets = record_columns(20)
    write_record(sqlite_url, "rec", features, targets)
    dm = make_dm(sqlite_url, "rec", columns=["tokens", "price"], shuffle=False, batch_size=4)
    assert {k: dm.hparams[k] for k in ("columns", "pad_varlen", "pad_value")} == {
        "columns": ["tokens", "price"], "pad_varlen": False, "pad_value": 0}
    x, _ = next(iter(dm.train_dataloader()))
    assert list(x) == ["tokens", "price"] and isinstance(x["tokens"], list)
    dm.pad_varlen, dm.pad_value = True, 9
    x, _ = next(iter(dm.train_dataloader()))
    assert isinstance(x["tokens"], Padded) and x["tokens"].lengths.tolist() == [len(features["tokens"][i])
                                                                             for i in range(4)]
