"""The project on the DM8 behaviour model (8 KB pages unless said): datasets written, appended, replaced and read;
write_query with CASE_SENSITIVE=Y and =N; a cold and a warm epoch; checkpoints; a 2,000-class predictions table;
a hung server cut off at max_wait. Results are asserted, and so is the statement sequence of a write and its publish.
"""

from __future__ import annotations

import io
import re
import time
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from lightning.pytorch import Callback, LightningModule
from loading.support import RecordingModule, assert_exactly_once, make_dm, quiet_trainer, write_labelled
from torch.utils.data import DataLoader, TensorDataset

from dm8model import DM8Server
from dm8model.sqltext import fold
from lightning_dm8 import Database, DatabaseUnavailableError, DatasetTable, write_arrays, write_query
from lightning_dm8.checkpoint.records import CheckpointMeta
from lightning_dm8.checkpoint.store import CheckpointStore
from lightning_dm8.predictions.writer import DM8PredictionWriter
from lightning_dm8.tables.reader import TableReader

IMAGE = (64, 64)  # uint8: 4,096 bytes a sample, over the 3,900 bytes a row holds in-row at 8 KB pages


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *IMAGE), dtype=np.uint8)


def physical_table(server: DM8Server, name: str) -> Any:
    """The model's table ``name`` (written unquoted); for a view, the table it shows."""
    table = server.table(fold(name))
    assert table is not None, name
    if table.view_sql is not None:
        match = re.fullmatch(r"SELECT \* FROM (\S+)", table.view_sql)
        assert match, table.view_sql
        return physical_table(server, match.group(1))
    return table


def writes(server: DM8Server, since: int) -> list[str]:
    """What changed the database since ``since`` (and the page-size question), random table names replaced."""
    kept = [s for s in server.statements(since=since)
            if s != "ROLLBACK" and (not s.upper().startswith("SELECT") or s == "SELECT PAGE()")]
    return [re.sub(r"ldm8_d_[0-9a-f]{8}_[0-9a-f]{8}", "<table>", s) for s in kept]


GOLDEN_FIRST_WRITE = [
    # Registry tables: DDL, each committing itself.
    "CREATE TABLE ldm8_datasets ( name VARCHAR2(255 CHAR) NOT NULL, row_count BIGINT NOT NULL, codec TEXT NOT NULL, "
    "label_kind VARCHAR2(16 CHAR) NOT NULL, fingerprint VARCHAR2(64 CHAR) NOT NULL, created_at DATETIME NOT NULL, "
    "updated_at DATETIME NOT NULL, current_version BIGINT, PRIMARY KEY (name) )",
    "CREATE TABLE ldm8_dataset_versions ( name VARCHAR2(255 CHAR) NOT NULL, version BIGINT NOT NULL, physical "
    "VARCHAR2(255 CHAR) NOT NULL, row_count BIGINT NOT NULL, codec TEXT NOT NULL, label_kind VARCHAR2(16 CHAR) NOT "
    "NULL, fingerprint VARCHAR2(64 CHAR) NOT NULL, lineage VARCHAR2(64 CHAR) NOT NULL, created_at DATETIME NOT NULL, "
    "PRIMARY KEY (name, version) )",
    "COMMIT",
    # The version's own table: the page size asked once, long rows (4,096-byte samples), clustered on row_id.
    "SELECT PAGE()",
    "CREATE TABLE <table> ( row_id BIGINT NOT NULL, features VARBINARY(4096) NOT NULL, label BIGINT NOT NULL, "
    "CLUSTER PRIMARY KEY (row_id) ) STORAGE(USING LONG ROW)",
    "COMMIT",
    "INSERT INTO <table> (row_id, features, label) VALUES (?, ?, ?) <300 rows>",
    "COMMIT",
    "CALL DBMS_STATS.GATHER_TABLE_STATS(?, ?, NULL, 100, TRUE)",
    "COMMIT",
    # Publishing: DML only, one transaction, whatever DDL does; then the view (DDL, after the commit).
    "INSERT INTO ldm8_dataset_versions (name, version, physical, row_count, codec, label_kind, fingerprint, lineage, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO ldm8_datasets (name, row_count, codec, label_kind, fingerprint, created_at, updated_at, "
    "current_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "COMMIT",
    "CREATE OR REPLACE VIEW imgs AS SELECT * FROM <table>",
    "COMMIT",
]


def test_4096_byte_samples_are_written_appended_replaced_and_read_back(dm8: DM8Server) -> None:
    db = Database(dm8.url())
    first, more, other = images(300, 0), images(100, 1), images(50, 2)

    mark = dm8.mark()
    info = write_arrays(db, "imgs", first, np.arange(300), progress=False)
    assert writes(dm8, mark)[:len(GOLDEN_FIRST_WRITE)] == GOLDEN_FIRST_WRITE
    table = physical_table(dm8, info.physical)
    assert table.long_row and table.clustered and table.primary_key == ["ROW_ID"]
    assert dm8.statistics == [table.name]
    dataset = DatasetTable(db, "imgs")
    block = dataset.read_range(0, 300)
    np.testing.assert_array_equal(np.stack(list(block.features)), first)
    np.testing.assert_array_equal(np.asarray(block.labels), np.arange(300))
    features, label = dataset[299]
    np.testing.assert_array_equal(features, first[299])
    assert label == 299

    write_arrays(db, "imgs", more, np.arange(300, 400), if_exists="append", progress=False)
    assert len(DatasetTable(db, "imgs")) == 400
    np.testing.assert_array_equal(np.stack(list(DatasetTable(db, "imgs").read_range(300, 400).features)), more)
    assert dm8.statistics[-1] == table.name  # statistics again after the append

    replaced = write_arrays(db, "imgs", other, np.arange(50), if_exists="replace", progress=False)
    assert replaced.physical != info.physical
    again = DatasetTable(db, "imgs")
    assert len(again) == 50
    np.testing.assert_array_equal(np.stack(list(again.read_range(0, 50).features)), other)
    assert dm8.statistics[-1] == physical_table(dm8, replaced.physical).name
    assert sum(s == "SELECT PAGE()" for s in dm8.statements()) == 1  # once per engine
    db.dispose()


def test_write_query_matches_columns_as_the_server_folds_them(dm8_any_case: DM8Server) -> None:
    server = dm8_any_case
    db = Database(server.url())
    rows = [(i, float(i) / 2, float(-i), i % 3) for i in range(40)]
    with db.begin() as conn:
        # An Oracle-style source table: names written upper case (stored so in either mode).
        conn.exec_driver_sql("CREATE TABLE RAW_SRC (ID BIGINT NOT NULL, X FLOAT NOT NULL, Y FLOAT NOT NULL, "
                             "LABEL BIGINT NOT NULL, PRIMARY KEY (ID))")
        cursor = conn.connection.cursor()
        cursor.executemany("INSERT INTO RAW_SRC (ID, X, Y, LABEL) VALUES (?, ?, ?, ?)", rows)
    info = write_query(db, "from_sql", "SELECT * FROM raw_src", label_column="label", order_by=["id"],
                       progress=False)
    assert info.row_count == 40 and info.codec.kind == "numeric"
    assert [c.upper() for c in info.codec.columns] == ["ID", "X", "Y"]
    block = DatasetTable(db, "from_sql").read_range(0, 40)
    assert np.asarray(block.labels).tolist() == [r[3] for r in rows]
    np.testing.assert_allclose(np.asarray(block.features), [r[:3] for r in rows])
    db.dispose()


def test_a_600_column_query_fits_its_codec_in_the_registry_and_its_rows_in_long_rows(dm8: DM8Server) -> None:
    db = Database(dm8.url())
    names = [f"feature_number_{i:03d}" for i in range(600)]  # a codec of about 14,000 characters of JSON
    with db.begin() as conn:
        columns = ", ".join(f"{n} FLOAT NOT NULL" for n in names)
        conn.exec_driver_sql(f"CREATE TABLE wide_src (id BIGINT NOT NULL, {columns}, label BIGINT NOT NULL, "
                             f"PRIMARY KEY (id)) STORAGE(USING LONG ROW)")
        marks = ", ".join("?" * (len(names) + 2))
        conn.connection.cursor().executemany(
            f"INSERT INTO wide_src (id, {', '.join(names)}, label) VALUES ({marks})",
            [(r, *[float(r * 1000 + c) for c in range(600)], r % 2) for r in range(5)],
        )
    info = write_query(db, "wide", f"SELECT {', '.join(names)}, label FROM wide_src", order_by=names[:1],
                       progress=False)
    assert len(info.codec.to_json()) > 10_000 and list(info.codec.columns) == names
    assert physical_table(dm8, info.physical).long_row  # 600 x 8 bytes: over 3,900
    again = DatasetTable(db, "wide")
    assert again.info().codec == info.codec
    block = again.read_range(0, 5)
    assert np.asarray(block.features)[4, 599] == 4599.0
    db.dispose()


class EpochMarks(Callback):
    """The model server's call position at the start and end of each training epoch."""

    def __init__(self, server: DM8Server, module: RecordingModule) -> None:
        self.server, self.module = server, module
        self.spans: list[tuple[int, int, int, int]] = []
        self._start = (0, 0)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._start = (self.server.mark(), len(self.module.seen))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.spans.append((*self._start, self.server.mark(), len(self.module.seen)))


def test_a_cold_epoch_reads_the_database_and_a_warm_one_only_the_cache(dm8: DM8Server, tmp_path) -> None:
    url = dm8.url()
    write_labelled(url, "train", 300)
    module = RecordingModule()
    marks = EpochMarks(dm8, module)
    dm = make_dm(url, "train", cache_dir=tmp_path / "cache", block_size=64, batch_size=32)
    quiet_trainer(max_epochs=2, callbacks=[marks]).fit(module, datamodule=dm)
    range_reads = []
    for calls_from, seen_from, calls_to, seen_to in marks.spans:
        ids = np.concatenate(module.seen[seen_from:seen_to]).astype(np.int64)
        assert_exactly_once(ids, 300)
        range_reads.append(sum("BETWEEN" in c.sql for c in dm8.calls[calls_from:calls_to] if c.op == "execute"))
    assert range_reads[0] == 5 and range_reads[1] == 0  # 300 rows in blocks of 64; then all from the cache


def test_checkpoints_are_saved_in_blob_chunks_and_load_back(dm8: DM8Server) -> None:
    store = CheckpointStore(dm8.url(), "models", chunk_size=64 << 10)
    state = {"w": torch.arange(60_000, dtype=torch.float32), "step": 7}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    meta = CheckpointMeta(name="last", kind="last", epoch=1, global_step=7, monitor=None, monitor_value=None,
                          monitor_mode=None)
    store.save("run1", payload, meta)
    chunks = physical_table(dm8, "models_chunks")
    assert chunks.column("DATA", True).type == "BLOB" and not chunks.clustered
    lob_reads = dm8.lob_reads
    info = store.resolve("run1", "last")
    assert bytes(store.read(info)) == payload
    assert dm8.lob_reads - lob_reads == -(-len(payload) // (64 << 10))  # one LOB value per chunk
    loaded = store.load(info, map_location="cpu")
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 7


class WideClassifier(LightningModule):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(batch[0])


def test_a_2000_class_predictions_table_is_written_and_read_back(dm8: DM8Server, tmp_path) -> None:
    torch.manual_seed(0)
    x = torch.randn(70, 4)
    model = WideClassifier(2000)
    writer = DM8PredictionWriter(dm8.url(), "preds", flush_rows=32)
    quiet_trainer(callbacks=[writer], default_root_dir=tmp_path).predict(
        model, DataLoader(TensorDataset(x), batch_size=16), return_predictions=False
    )
    table = physical_table(dm8, "preds")
    scores = table.column("SCORES", True)
    assert (scores.type, scores.length) == ("VARBINARY", 8000) and table.long_row and table.clustered
    db = Database(dm8.url())
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT row_id, prediction, scores FROM preds ORDER BY row_id")).all()
    db.dispose()
    expected = model(x).softmax(1).detach().numpy()
    assert [r[0] for r in rows] == list(range(70))
    for row_id, prediction, blob in rows:
        assert prediction == int(expected[row_id].argmax())
        np.testing.assert_allclose(np.frombuffer(blob, "<f4"), expected[row_id], rtol=1e-5)


def test_a_server_that_stops_answering_fails_the_read_at_max_wait(dm8: DM8Server) -> None:
    db = Database(dm8.url(), connect_timeout=1)
    info = write_arrays(db, "hung", images(20, 3), np.arange(20), progress=False)
    reader = TableReader(db, info, max_wait=2)
    assert len(reader.fetch_rows(0, 10)) == 10
    dm8.hung.set()
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="-70019"):
        reader.fetch_rows(0, 10)
    elapsed = time.monotonic() - start
    dm8.hung.clear()
    assert 1.5 < elapsed < 2 + 1.5, elapsed
    db.dispose()


def test_a_pooled_connection_to_a_silent_server_is_not_waited_on_forever(dm8: DM8Server) -> None:
    db = Database(dm8.url(), connect_timeout=1)
    db.ping()  # one connection now idle in the pool; the next checkout pings it first
    dm8.hung.set()
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailableError):
        db.ping()
    dm8.hung.clear()
    assert time.monotonic() - start < 1 + 1 + 1.5  # the ping cut at 1 s, then a login bounded at 1 s
    db.dispose()
