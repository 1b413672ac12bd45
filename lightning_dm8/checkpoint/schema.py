"""The model table: one header row per checkpoint and its bytes in chunk rows of a companion table.

Checkpoints are split into chunks because a single value is capped (MySQL's ``max_allowed_packet``, DM8's 2 GB
LOB limit) and because one huge value makes every driver hold it twice in memory. The header carries what a
reader needs to choose and verify a checkpoint without touching its bytes: size, SHA-256, metric, ``complete``.

``data_version`` names the version whose chunk rows hold the bytes: its own, or an earlier one of the same run with
the same SHA-256. ModelCheckpoint's ``last`` checkpoint is usually byte-identical to the top-k one saved at the same
step, so it costs a header row instead of a second copy of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from lightning_dm8.checkpoint.errors import InvalidCheckpointPathError
from lightning_dm8.db.schema import binary_type

DEFAULT_TABLE = "ldm8_checkpoints"
CHUNKS_SUFFIX = "_chunks"
MAX_NAME_LENGTH = 255
_MAX_TABLE_LENGTH = 56  # PostgreSQL identifiers stop at 63 bytes and the chunk table adds "_chunks"

KIND_PERIODIC = "periodic"
"""Saved by the callback's top-k / every-n policy; the only kind retention deletes."""
KIND_LAST = "last"
"""ModelCheckpoint's ``last`` checkpoint: replaced by the next one, never pruned by retention."""
KIND_MANUAL = "manual"
"""Saved by hand to ``dm8:<run>:<name>``; kept until deleted explicitly."""


@dataclass(frozen=True)
class ModelTables:
    """The header table (``<name>``) and the chunk table (``<name>_chunks``) of one model table."""

    header: sa.Table
    chunks: sa.Table


def check_table_name(name: str) -> None:
    """Reject names that cannot hold both tables on every backend (the dialect quotes them; length still matters)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidCheckpointPathError(f"the model table name must be a non-empty string; got {name!r}")
    if len(name) > _MAX_TABLE_LENGTH:
        raise InvalidCheckpointPathError(
            f"model table name {name[:30]!r}... is {len(name)} characters long; use at most {_MAX_TABLE_LENGTH} "
            f"(the chunk table adds {CHUNKS_SUFFIX!r})"
        )


def model_tables(name: str, backend: str) -> ModelTables:
    """The two tables of model table ``name``, typed for ``backend`` (``sqlite``, ``postgresql``, ``mysql``, ``dm``)."""
    check_table_name(name)
    metadata = sa.MetaData()
    header = sa.Table(
        name,
        metadata,
        sa.Column("run", sa.String(MAX_NAME_LENGTH), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(MAX_NAME_LENGTH)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("epoch", sa.BigInteger),
        sa.Column("global_step", sa.BigInteger),
        sa.Column("monitor", sa.String(MAX_NAME_LENGTH)),
        sa.Column("monitor_value", sa.Float(53)),
        sa.Column("monitor_mode", sa.String(3)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("chunk_count", sa.BigInteger, nullable=False),
        sa.Column("data_version", sa.BigInteger, nullable=False),
        sa.Column("model_class", sa.String(1000)),
        sa.Column("complete", sa.SmallInteger, nullable=False),
    )
    # BIGINT for every integer: PostgreSQL's binary COPY (fastpath.insert_rows) sends integers as int8.
    chunks = sa.Table(
        name + CHUNKS_SUFFIX,
        metadata,
        sa.Column("run", sa.String(MAX_NAME_LENGTH), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("chunk_no", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", binary_type(backend, None), nullable=False),
    )
    # Serialized tensors do not compress: PostgreSQL would try pglz on every chunk (about a third of a 100 MB save)
    # before storing it uncompressed anyway. Only where this table is created; an existing one keeps its setting.
    sa.event.listen(chunks, "after_create", sa.DDL(
        "ALTER TABLE %(fullname)s ALTER COLUMN data SET STORAGE EXTERNAL"
    ).execute_if(dialect="postgresql"))
    return ModelTables(header, chunks)
