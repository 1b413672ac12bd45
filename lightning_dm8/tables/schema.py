"""Table definitions (SQLAlchemy Core): the dataset registry and dataset tables, typed per backend.

Names are always SQLAlchemy identifiers, so each dialect quotes them; nothing from a user reaches SQL as text.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from lightning_dm8.tables.codecs import FeatureCodec, LabelKind

REGISTRY_TABLE = "ldm8_datasets"
ROW_ID = "row_id"
FEATURES = "features"
LABEL = "label"

DM_VARBINARY_LIMIT = 8188
"""DM8's VARBINARY holds at most 8188 bytes; larger samples go to BLOB (which costs round trips per cell)."""

PG_MAX_NAME_BYTES = 63
MYSQL_MAX_NAME_CHARS = 64
DM_MAX_NAME_BYTES = 128

PG_INLINE_LIMIT = 8000
"""PostgreSQL keeps a fixed-size value up to this many bytes in the row (STORAGE PLAIN): no TOAST on read."""


def _name_type() -> sa.types.TypeEngine:
    """Dataset names compare exactly: MySQL's default case-insensitive collation would let ``Cats`` find ``cats``'s
    registry row (and read the other table) while the table names themselves are distinct."""
    return sa.String(255).with_variant(mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def name_problem(backend: str, name: str) -> str | None:
    """Why ``name`` cannot be a table name on ``backend``, or None when it can.

    Checked before anything is written: PostgreSQL silently truncates longer names (the registry would then name a
    table that does not exist), MySQL rejects them only after the staging table was filled.
    """
    if "\x00" in name:
        return "it contains a NUL character"
    if backend == "postgresql" and len(name.encode("utf-8")) > PG_MAX_NAME_BYTES:
        return f"PostgreSQL names hold at most {PG_MAX_NAME_BYTES} bytes of UTF-8; it has {len(name.encode('utf-8'))}"
    if backend == "mysql":
        if len(name) > MYSQL_MAX_NAME_CHARS:
            return f"MySQL/MariaDB names hold at most {MYSQL_MAX_NAME_CHARS} characters; it has {len(name)}"
        if any(ord(c) > 0xFFFF for c in name):
            return "MySQL/MariaDB names cannot contain characters outside the Basic Multilingual Plane (e.g. emoji)"
        if name.endswith(" "):
            return "MySQL/MariaDB names cannot end with a space"
    if backend == "dm" and len(name.encode("utf-8")) > DM_MAX_NAME_BYTES:
        return f"DM8 names hold at most {DM_MAX_NAME_BYTES} bytes; it has {len(name.encode('utf-8'))}"
    return None


def registry_table(metadata: sa.MetaData) -> sa.Table:
    """The dataset registry: one row per dataset table, with its codec, size and content fingerprint."""
    return sa.Table(
        REGISTRY_TABLE,
        metadata,
        sa.Column("name", _name_type(), primary_key=True),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("codec", sa.String(2000), nullable=False),
        sa.Column("label_kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def row_id_type() -> sa.types.TypeEngine:
    """BIGINT everywhere; INTEGER on SQLite so that the key is the table's rowid (no separate index)."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def binary_type(backend: str, fixed_size: int | None) -> sa.types.TypeEngine:
    """The column type for binary features: in-row where the backend allows, large enough everywhere."""
    if backend == "mysql":
        return mysql.LONGBLOB()
    if backend == "dm" and fixed_size is not None and fixed_size <= DM_VARBINARY_LIMIT:
        return sa.VARBINARY(DM_VARBINARY_LIMIT)
    return sa.LargeBinary()


def text_type(backend: str) -> sa.types.TypeEngine:
    return mysql.LONGTEXT(charset="utf8mb4") if backend == "mysql" else sa.Text()


def label_type(kind: LabelKind) -> sa.types.TypeEngine:
    return sa.BigInteger() if kind == "int" else sa.Float(53)


def dataset_table(
    metadata: sa.MetaData, name: str, codec: FeatureCodec, label_kind: LabelKind, backend: str
) -> sa.Table:
    """The dataset table ``name``: ``row_id`` (dense 0..N-1, primary key), the features and the label."""
    columns: list[sa.Column] = [sa.Column(ROW_ID, row_id_type(), primary_key=True, autoincrement=False)]
    if codec.kind == "numeric":
        columns += [sa.Column(c, sa.Float(53), nullable=False) for c in codec.columns]
    elif codec.kind == "text":
        columns.append(sa.Column(FEATURES, text_type(backend), nullable=False))
    else:
        columns.append(sa.Column(FEATURES, binary_type(backend, codec.fixed_size), nullable=False))
    if label_kind != "none":
        columns.append(sa.Column(LABEL, label_type(label_kind), nullable=False))
    return sa.Table(name, metadata, *columns)


def postgres_storage(codec: FeatureCodec) -> str | None:
    """PostgreSQL column storage for the features: PLAIN for small fixed samples (read without TOAST),
    EXTERNAL (out of line, uncompressed) for large ones, MAIN for ragged ones; None for non-binary kinds."""
    if codec.kind not in ("array", "varlen", "bytes"):
        return None
    size = codec.fixed_size
    if size is None:
        return "MAIN"
    return "PLAIN" if size <= PG_INLINE_LIMIT else "EXTERNAL"


def feature_columns(table: sa.Table) -> list[sa.Column]:
    """The columns holding features, in storage order."""
    return [c for c in table.columns if c.name not in (ROW_ID, LABEL)]
