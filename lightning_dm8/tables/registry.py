"""The dataset registry: which dataset names exist, which version of each is current, and what each version holds.

``ldm8_datasets`` holds one row per dataset (its current version's description and ``current_version``);
``ldm8_dataset_versions`` one row per kept version, naming the physical table that holds its rows. Everything a
reader needs is resolved here once, so a run pins the physical table and row count of the version it started with.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from lightning_dm8.db.backends import Backend
from lightning_dm8.db.engine import Database
from lightning_dm8.errors import AuthenticationError, DatabaseUnavailableError, InvalidInputError, LightningDM8Error
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind
from lightning_dm8.tables.schema import dataset_table, registry_table, versions_table

_METADATA = sa.MetaData()
REGISTRY = registry_table(_METADATA)
VERSIONS = versions_table(_METADATA)

_VERSIONED = re.compile(r"^(?P<name>.+)@(?P<version>[0-9]+)$")


@dataclass(frozen=True)
class DatasetInfo:
    """One version of a dataset: name, size, codec, label kind, fingerprint, and the physical table holding it.

    ``version`` is 0 and ``physical`` empty for a dataset written before versions existed (its table is its name).
    ``created_at`` is when the dataset was first written, ``updated_at`` when this version was.
    """

    name: str
    row_count: int
    codec: FeatureCodec
    label_kind: LabelKind
    fingerprint: str
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int = 0
    physical: str = ""
    lineage: str = ""

    @property
    def table_name(self) -> str:
        """The physical table that holds this version's rows."""
        return self.physical or self.name

    @property
    def cache_lineage(self) -> str:
        """What a cache of this version's blocks is keyed by: unchanged by appends (see ``versions_table``)."""
        return self.lineage or self.fingerprint

    def table(self, backend: Backend) -> sa.Table:
        """The SQLAlchemy table object of this version's physical table (no reflection needed)."""
        return dataset_table(sa.MetaData(), self.table_name, self.codec, self.label_kind, backend)

    def as_dict(self) -> dict[str, object]:
        """The entry as plain data (``lightning-dm8 info``); a record's columns under ``fields`` and ``targets``."""
        described: dict[str, object] = {
            "name": self.name,
            "version": self.version,
            "table": self.table_name,
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
        if self.codec.kind == "record":
            described["fields"] = [_column_dict(name, codec) for name, codec in self.codec.fields]
            described["targets"] = [_column_dict(name, codec) for name, codec in self.codec.targets]
        return described


def _column_dict(name: str, codec: FeatureCodec) -> dict[str, object]:
    return {"name": name, "kind": codec.kind, "dtype": codec.dtype, "shape": list(codec.shape)}


def split_version(name: str) -> tuple[str, int | None]:
    """``"cifar@3"`` -> ``("cifar", 3)``; a name without ``@<digits>`` -> ``(name, None)``."""
    match = _VERSIONED.match(name)
    if match is None:
        return name, None
    return match.group("name"), int(match.group("version"))


def ensure_registry(db: Database) -> None:
    """Create the registry tables if missing (another process may be creating them at the same moment); give a
    registry from before versions its ``current_version``."""
    for attempt in range(3):
        try:
            with db.begin("prepare the dataset registry") as conn:
                create_registry(conn)
            return
        except (DatabaseUnavailableError, AuthenticationError):
            raise
        except LightningDM8Error:
            with db.connect("inspect the dataset registry") as conn:
                if _has_registry(conn) and _is_current(conn):
                    return
            if attempt == 2:
                raise


def _is_current(conn: sa.Connection) -> bool:
    return "current_version" in {c["name"].lower() for c in sa.inspect(conn).get_columns(REGISTRY.name)}


def create_registry(conn: sa.Connection) -> None:
    """Create the registry tables if missing, inside the caller's transaction."""
    inspector = sa.inspect(conn)
    if inspector.has_table(REGISTRY.name):
        if not _is_current(conn):
            column = sa.Column("current_version", sa.BigInteger, nullable=True)
            quote = conn.dialect.identifier_preparer.quote
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {quote(REGISTRY.name)} ADD {quote('current_version')} {kind}")
    else:
        REGISTRY.create(conn, checkfirst=True)
    VERSIONS.create(conn, checkfirst=True)


def _has_registry(conn: sa.Connection) -> bool:
    inspector = sa.inspect(conn)
    return inspector.has_table(REGISTRY.name) and inspector.has_table(VERSIONS.name)


def _head_info(row: Any) -> DatasetInfo:
    """A registry row of a dataset not (yet) versioned: its table is its name."""
    return DatasetInfo(row.name, int(row.row_count), FeatureCodec.from_json(row.codec), row.label_kind,
                       row.fingerprint, row.created_at, row.updated_at)


def _version_info(row: Any, updated_at: dt.datetime | None = None) -> DatasetInfo:
    return DatasetInfo(row.name, int(row.row_count), FeatureCodec.from_json(row.codec), row.label_kind,
                       row.fingerprint, row.created_at, updated_at or row.created_at, int(row.version), row.physical,
                       row.lineage)


def _exact(rows: Sequence[Any], name: str) -> Any:
    """The row whose name is exactly ``name``: a case-insensitive collation (MySQL's default, DM8 with
    CASE_SENSITIVE=N) also returns ``Cats`` for ``cats``, which is another dataset."""
    return next((row for row in rows if row.name == name), None)


def head_row(conn: sa.Connection, name: str, *, lock: bool = False) -> Any:
    """The registry row of ``name`` (locked for update when ``lock``), or None. A registry from before versions
    (no ``current_version`` column yet) reads too: its rows are all unversioned."""
    columns = [c for c in REGISTRY.c if c.name != "current_version" or _is_current(conn)]
    query = sa.select(*columns).where(REGISTRY.c.name == name)
    if lock:
        query = query.with_for_update()
    return _exact(conn.execute(query).all(), name)


def read_version(conn: sa.Connection, name: str, version: int) -> DatasetInfo | None:
    """Version ``version`` of ``name`` if it is still kept, else None."""
    if not _has_registry(conn):
        return None
    rows = conn.execute(sa.select(VERSIONS).where(VERSIONS.c.name == name, VERSIONS.c.version == version)).all()
    row = _exact(rows, name)
    return None if row is None else _version_info(row)


def read_info(conn: sa.Connection, name: str) -> DatasetInfo | None:
    """The current version of dataset ``name`` (``name@N``: version N), or None when there is none."""
    base, version = split_version(name)
    if version is not None:
        return read_version(conn, base, version)
    if not sa.inspect(conn).has_table(REGISTRY.name):
        return None
    head = head_row(conn, name)
    if head is None:
        return None
    current = getattr(head, "current_version", None)
    if current is None:
        return _head_info(head)
    info = read_version(conn, name, int(current))
    return None if info is None else replace(info, created_at=head.created_at, updated_at=head.updated_at)


def list_infos(conn: sa.Connection) -> list[DatasetInfo]:
    """The current version of every dataset, by name."""
    if not sa.inspect(conn).has_table(REGISTRY.name):
        return []
    names = conn.execute(sa.select(REGISTRY.c.name).order_by(REGISTRY.c.name)).scalars().all()
    found = (read_info(conn, name) for name in names)
    return [info for info in found if info is not None]


def list_versions(conn: sa.Connection, name: str | None = None) -> list[DatasetInfo]:
    """Every kept version (of ``name``, or of every dataset), by name and version."""
    if not _has_registry(conn):
        return []
    query = sa.select(VERSIONS).order_by(VERSIONS.c.name, VERSIONS.c.version)
    if name is not None:
        query = query.where(VERSIONS.c.name == name)
    return [_version_info(row) for row in conn.execute(query) if name is None or row.name == name]


def write_head(conn: sa.Connection, info: DatasetInfo, *, insert: bool) -> None:
    """Point the registry row of ``info.name`` at ``info`` (insert it when ``insert``: the name's unique key then
    decides between two writers creating the same dataset)."""
    values = {
        "row_count": info.row_count, "codec": info.codec.to_json(), "label_kind": info.label_kind,
        "fingerprint": info.fingerprint, "updated_at": info.updated_at,
        "current_version": info.version or None,
    }
    if insert:
        conn.execute(REGISTRY.insert().values(name=info.name, created_at=info.created_at, **values))
    else:
        conn.execute(REGISTRY.update().where(REGISTRY.c.name == info.name).values(**values))


def insert_version(conn: sa.Connection, info: DatasetInfo) -> None:
    conn.execute(VERSIONS.insert().values(
        name=info.name, version=info.version, physical=info.table_name, row_count=info.row_count,
        codec=info.codec.to_json(), label_kind=info.label_kind, fingerprint=info.fingerprint,
        lineage=info.cache_lineage, created_at=info.updated_at,
    ))


def delete_dataset(conn: sa.Connection, name: str) -> list[str]:
    """Remove ``name`` from the registry; returns the physical tables its versions used (for the caller to drop)."""
    tables = {info.table_name for info in list_versions(conn, name)}
    head = head_row(conn, name)
    if head is not None and getattr(head, "current_version", None) is None:
        tables.add(name)
    conn.execute(REGISTRY.delete().where(REGISTRY.c.name == name))
    if sa.inspect(conn).has_table(VERSIONS.name):
        conn.execute(VERSIONS.delete().where(VERSIONS.c.name == name))
    return sorted(tables)


def check_codec_fits(codec: FeatureCodec) -> None:
    """The codec is stored as JSON text: refuse one too large for any backend's text column, naming the cause."""
    size = len(codec.to_json().encode("utf-8"))
    if size > 1 << 20:
        raise InvalidInputError(
            f"the dataset's description is {size} bytes of JSON ({len(codec.columns)} feature columns); store fewer "
            f"columns (e.g. one array column instead of many numeric ones)"
        )


def now() -> dt.datetime:
    """Timestamps are stored in UTC without zone (portable across all four backends)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
