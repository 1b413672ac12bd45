"""DatasetTable: a dataset table seen as a sized, indexable collection of ``(features, label)``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from lightning_dm8.db.coerce import as_database
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import InvalidDatasetError, TableNotFoundError
from lightning_dm8.tables import registry, versions
from lightning_dm8.tables.block import Block
from lightning_dm8.tables.columns import column_value
from lightning_dm8.tables.ddl import table_exists
from lightning_dm8.tables.reader import TableReader


def load_info(db: Database, name: str) -> registry.DatasetInfo:
    """The registry entry of dataset ``name``; a clear error when the table is missing or unregistered."""
    with db.connect(f"look up dataset {name!r}") as conn:
        info = registry.read_info(conn, name)
        exists = info is not None or table_exists(conn, name)
    if info is not None:
        return info
    if exists:
        raise InvalidDatasetError(
            f"table {name!r} in {db.url} is not a dataset table (it has no entry in {registry.REGISTRY.name}); "
            f"create it with write_arrays, write_dataset or write_query"
        )
    raise TableNotFoundError(
        f"dataset table {name!r} does not exist in {db.url}; `lightning-dm8 ls --url URL` lists the dataset tables, "
        f"and write_arrays/write_query create one"
    )


class DatasetTable:
    """A dataset table: ``len()``, ``[i] -> (features, label)``, ``read_range``, ``info()``, ``validate()``, ``drop()``.

    Features come back decoded (a numpy array, ``str`` or ``bytes``) and labels as ``int`` or ``float``
    (None for an unlabelled dataset). A record dataset's features are a dict ``{column: value}`` (numbers as Python
    numbers), its label None, one label column's value, or a dict of several. Nothing connects until the first call.
    ``name`` may pin a kept version: ``"cifar@3"``.

    Raises (from the first call that reads):
        TableNotFoundError: no such dataset (or version).
        InvalidDatasetError: the table is not a dataset, or a row is broken (the message names the row id).
        DatabaseUnavailableError, AuthenticationError, DatabaseError: what the database reports.
    """

    def __init__(self, url: str | Database, name: str) -> None:
        self.db = as_database(url)
        self.name = name
        self._info: registry.DatasetInfo | None = None
        self._reader: TableReader | None = None

    def __repr__(self) -> str:
        return f"DatasetTable({self.db.url!r}, {self.name!r})"

    def info(self, refresh: bool = False) -> registry.DatasetInfo:
        if self._info is None or refresh:
            self._info = load_info(self.db, self.name)
            self._reader = None
        return self._info

    @property
    def reader(self) -> TableReader:
        if self._reader is None:
            self._reader = TableReader(self.db, self.info())
        return self._reader

    def __len__(self) -> int:
        return self.info().row_count

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"row {index} is out of range for dataset {self.name!r} of {n} rows")
        block = self.read_range(i, i + 1)
        if self.info().codec.kind == "record":
            return column_value(block.features, 0), None if block.labels is None else column_value(block.labels, 0)
        label = None if block.labels is None else block.labels[0].item()
        return block.features[0], label

    def read_range(self, lo: int, hi: int) -> Block:
        """Rows ``lo <= row_id < hi`` as a :class:`Block` (one range query)."""
        n = len(self)
        if not 0 <= lo <= hi <= n:
            raise IndexError(f"range [{lo}, {hi}) is out of bounds for dataset {self.name!r} of {n} rows")
        return self.reader.read(lo, hi)

    def validate(self) -> registry.DatasetInfo:
        """Check that row ids are exactly 0..N-1 as registered; raises :class:`InvalidDatasetError` if not."""
        info = self.info(refresh=True)
        table = info.table(self.db.backend)
        row_id = table.c.row_id
        with self.db.connect(f"validate dataset {self.name!r}") as conn:
            count, low, high = conn.execute(sa.select(sa.func.count(), sa.func.min(row_id), sa.func.max(row_id))).one()
        expected = (info.row_count, 0 if info.row_count else None, info.row_count - 1 if info.row_count else None)
        if (count, low, high) != expected:
            raise InvalidDatasetError(
                f"dataset table {self.name!r}: row ids are not dense 0..{info.row_count - 1} as registered "
                f"({info.row_count} rows); found {count} rows with row_id from {low} to {high}. Rewrite it with "
                f"write_arrays/write_query (if_exists='replace')"
            )
        return info

    def drop(self) -> None:
        """Drop the dataset: its table and its registry entry. Only a registered dataset is dropped; any other table
        is left alone (:class:`InvalidDatasetError`, or :class:`TableNotFoundError` when there is none)."""
        load_info(self.db, self.name)
        with self.db.begin(f"drop dataset {self.name!r}") as conn:
            if registry.read_info(conn, self.name) is None:  # dropped by someone else meanwhile
                return
            tables = registry.delete_dataset(conn, self.name)
        # The registry no longer names them: the rest is tidying up, which gc finishes if this is cut short.
        versions.drop_tables(self.db, [self.name, *tables])
        self._info = None
        self._reader = None
