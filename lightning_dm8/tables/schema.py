"""Table definitions (SQLAlchemy Core): the dataset registry and dataset tables, typed by the backend.

Names are always SQLAlchemy identifiers, so each dialect quotes them; nothing from a user reaches SQL as text.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from lightning_dm8.db.backends import Backend
from lightning_dm8.tables.codecs import FeatureCodec, LabelKind

REGISTRY_TABLE = "ldm8_datasets"
VERSIONS_TABLE = "ldm8_dataset_versions"
ROW_ID = "row_id"
FEATURES = "features"
LABEL = "label"


def name_type() -> sa.types.TypeEngine:
    """Dataset names compare exactly: MySQL's default case-insensitive collation would let ``Cats`` find ``cats``'s
    registry row (and read the other table) while the table names themselves are distinct."""
    exact = mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin")
    return sa.String(255).with_variant(exact, "mysql", "mariadb")


def registry_table(metadata: sa.MetaData) -> sa.Table:
    """The dataset registry: one row per dataset, describing its current version (``current_version``; NULL for a
    dataset written before versions existed, whose table is the dataset's own name until it is adopted)."""
    return sa.Table(
        REGISTRY_TABLE,
        metadata,
        sa.Column("name", name_type(), primary_key=True),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("codec", sa.Text(), nullable=False),
        sa.Column("label_kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("current_version", sa.BigInteger, nullable=True),
    )


def versions_table(metadata: sa.MetaData) -> sa.Table:
    """Every kept version of every dataset: the physical table that holds it and what it holds.

    ``lineage`` is the fingerprint of the version that created the physical table: appends keep it (they add rows
    to the same table), so a cache keyed by lineage stays valid for every block the append did not touch.
    """
    return sa.Table(
        VERSIONS_TABLE,
        metadata,
        sa.Column("name", name_type(), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("physical", sa.String(255), nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("codec", sa.Text(), nullable=False),
        sa.Column("label_kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("lineage", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def row_id_type() -> sa.types.TypeEngine:
    """BIGINT everywhere; INTEGER on SQLite so that the key is the table's rowid (no separate index)."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def label_type(kind: LabelKind) -> sa.types.TypeEngine:
    return sa.BigInteger() if kind == "int" else sa.Float(53)


def dataset_table(
    metadata: sa.MetaData, name: str, codec: FeatureCodec, label_kind: LabelKind, backend: Backend
) -> sa.Table:
    """The dataset table ``name``: ``row_id`` (dense 0..N-1, primary key), the features and the label."""
    columns: list[sa.Column] = [sa.Column(ROW_ID, row_id_type(), primary_key=True, autoincrement=False)]
    if codec.kind == "record":
        columns += [sa.Column(name, column_type(column, backend), nullable=False)
                    for name, column in (*codec.fields, *codec.targets)]
        return sa.Table(name, metadata, *columns)
    if codec.kind == "numeric":
        columns += [sa.Column(c, sa.Float(53), nullable=False) for c in codec.columns]
    elif codec.kind == "text":
        columns.append(sa.Column(FEATURES, backend.text_type(), nullable=False))
    else:
        columns.append(sa.Column(FEATURES, backend.binary_type(codec.fixed_size), nullable=False))
    if label_kind != "none":
        columns.append(sa.Column(LABEL, label_type(label_kind), nullable=False))
    return sa.Table(name, metadata, *columns)


def column_type(codec: FeatureCodec, backend: Backend) -> sa.types.TypeEngine:
    """The natural SQL type of one record column: BIGINT, DOUBLE, BOOLEAN, the backend's text type, or its binary
    type for arrays and bytes (sized when every value has the same size)."""
    if codec.kind == "int":
        return sa.BigInteger()
    if codec.kind == "float":
        return sa.Float(53)
    if codec.kind == "bool":
        return sa.Boolean(create_constraint=False)
    if codec.kind == "text":
        return backend.text_type()
    return backend.binary_type(codec.fixed_size)


def binary_columns(codec: FeatureCodec) -> list[tuple[str, int | None]]:
    """``(column, fixed size)`` of every binary column of a dataset table (arrays, variable-length arrays, bytes)."""
    if codec.kind != "record":
        return [(FEATURES, codec.fixed_size)] if codec.kind in ("array", "varlen", "bytes") else []
    return [(name, column.fixed_size) for name, column in (*codec.fields, *codec.targets)
            if column.kind in ("array", "varlen", "bytes")]
