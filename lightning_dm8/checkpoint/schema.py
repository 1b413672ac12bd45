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
from lightning_dm8.db import names
from lightning_dm8.db.backends import Backend

DEFAULT_TABLE = "ldm8_checkpoints"
CHUNKS_SUFFIX = "_chunks"
MAX_NAME_LENGTH = 255

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


def check_table_name(name: str, backend: Backend | None = None) -> None:
    """Reject names that cannot hold both tables (``name`` and ``name_chunks``) on ``backend`` (None: the rules every
    backend shares, checked before a database is known)."""
    names.check_table_name(backend, name, "model table", suffix=CHUNKS_SUFFIX, error=InvalidCheckpointPathError)


def model_tables(name: str, backend: Backend) -> ModelTables:
    """The two tables of model table ``name``, typed for ``backend`` (``sqlite``, ``postgresql``, ``mysql``, ``dm``)."""
    check_table_name(name, backend)
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
        sa.Column("data", backend.binary_type(None), nullable=False),
    )
    backend.tune_chunk_table(chunks)
    return ModelTables(header, chunks)
