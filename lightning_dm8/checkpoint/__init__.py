"""Checkpoints and predictions in the database: ``DM8Checkpoint``, ``DM8CheckpointIO``, ``DM8PredictionWriter``.

Layout: ``schema`` (the model table), ``paths`` (which ``ckpt_path`` names which row), ``store`` (chunked, atomic,
verified bytes), ``policy`` (best / retention), ``secrets`` (password masking), ``io`` (Lightning's CheckpointIO),
``callback`` (the ModelCheckpoint users add), ``api`` (functions without a Trainer), ``commands`` (CLI),
``predictions`` (BasePredictionWriter into a table).
"""

from lightning_dm8.checkpoint.api import delete_checkpoints, export_checkpoint, list_checkpoints, load_checkpoint
from lightning_dm8.checkpoint.callback import DM8Checkpoint
from lightning_dm8.checkpoint.errors import (
    CheckpointConflictError,
    CheckpointCorruptError,
    CheckpointNotFoundError,
    CheckpointSecretError,
    InvalidCheckpointPathError,
)
from lightning_dm8.checkpoint.io import DM8CheckpointIO
from lightning_dm8.checkpoint.paths import checkpoint_dirpath, format_ckpt_path, parse_ckpt_path
from lightning_dm8.checkpoint.policy import Retention
from lightning_dm8.checkpoint.records import CheckpointInfo
from lightning_dm8.checkpoint.schema import DEFAULT_TABLE

__all__ = [
    "DEFAULT_TABLE",
    "CheckpointConflictError",
    "CheckpointCorruptError",
    "CheckpointInfo",
    "CheckpointNotFoundError",
    "CheckpointSecretError",
    "DM8Checkpoint",
    "DM8CheckpointIO",
    "InvalidCheckpointPathError",
    "Retention",
    "checkpoint_dirpath",
    "delete_checkpoints",
    "export_checkpoint",
    "format_ckpt_path",
    "list_checkpoints",
    "load_checkpoint",
    "parse_ckpt_path",
]
