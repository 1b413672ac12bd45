"""The dataset registry (table ``ldm8_datasets``): what each dataset table holds and its content fingerprint."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from lightning_dm8.db.schema import dataset_table, registry_table
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind

_METADATA = sa.MetaData()
REGISTRY = registry_table(_METADATA)


@dataclass(frozen=True)
class DatasetInfo:
    """One registry row: a dataset table's name, size, codec, label kind and fingerprint."""

    name: str
    row_count: int
    codec: FeatureCodec
    label_kind: LabelKind
    fingerprint: str
    created_at: dt.datetime
    updated_at: dt.datetime

    def table(self, backend: str) -> sa.Table:
        """The SQLAlchemy table object for this dataset (no reflection needed)."""
        return dataset_table(sa.MetaData(), self.name, self.codec, self.label_kind, backend)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "rows": self.row_count,
            "features": self.codec.kind,
            "dtype": self.codec.dtype,
            "shape": list(self.codec.shape),
            "columns": list(self.codec.columns),
            "label": self.label_kind,
            "fingerprint": self.fingerprint,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def ensure_registry(conn: sa.Connection) -> None:
    REGISTRY.create(conn, checkfirst=True)


def _info(row: sa.Row) -> DatasetInfo:
    return DatasetInfo(
        row.name, int(row.row_count), FeatureCodec.from_json(row.codec), row.label_kind, row.fingerprint,
        row.created_at, row.updated_at,
    )


def read_info(conn: sa.Connection, name: str) -> DatasetInfo | None:
    """The registry row of ``name``, or None when the registry or the row does not exist.

    The name is matched exactly here too: a registry created with a case-insensitive collation (MySQL's default,
    DM8 with CASE_SENSITIVE=N) returns ``Cats`` for ``cats``, which is another table.
    """
    if not sa.inspect(conn).has_table(REGISTRY.name):
        return None
    rows = conn.execute(sa.select(REGISTRY).where(REGISTRY.c.name == name)).all()
    return next((_info(row) for row in rows if row.name == name), None)


def list_infos(conn: sa.Connection) -> list[DatasetInfo]:
    if not sa.inspect(conn).has_table(REGISTRY.name):
        return []
    return [_info(r) for r in conn.execute(sa.select(REGISTRY).order_by(REGISTRY.c.name))]


def write_info(conn: sa.Connection, info: DatasetInfo) -> None:
    """Insert or replace the registry row of ``info.name`` inside the caller's transaction."""
    delete_info(conn, info.name)
    conn.execute(
        REGISTRY.insert().values(
            name=info.name, row_count=info.row_count, codec=info.codec.to_json(), label_kind=info.label_kind,
            fingerprint=info.fingerprint, created_at=info.created_at, updated_at=info.updated_at,
        )
    )


def delete_info(conn: sa.Connection, name: str) -> None:
    conn.execute(REGISTRY.delete().where(REGISTRY.c.name == name))


def now() -> dt.datetime:
    """Timestamps are stored in UTC without zone (portable across all four backends)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
