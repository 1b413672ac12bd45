"""lightning_dm8: train PyTorch Lightning models straight from relational database tables.

Public API, re-exported here; modules inside the package import from their own homes, never from here.
"""

from lightning_dm8.checkpoint.api import delete_checkpoints, export_checkpoint, list_checkpoints, load_checkpoint
from lightning_dm8.checkpoint.callback import DM8Checkpoint
from lightning_dm8.checkpoint.errors import CheckpointCorruptError, CheckpointNotFoundError, InvalidCheckpointPathError
from lightning_dm8.checkpoint.io import DM8CheckpointIO
from lightning_dm8.datamodule import DM8DataModule
from lightning_dm8.db.engine import Database
from lightning_dm8.db.urls import PASSWORD_ENV, mask_url
from lightning_dm8.errors import (
    AuthenticationError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidDatasetError,
    InvalidInputError,
    LightningDM8Error,
    MissingDriverError,
    TableExistsError,
    TableNotFoundError,
)
from lightning_dm8.predictions.writer import DM8PredictionWriter
from lightning_dm8.tables.dataset_table import DatasetTable
from lightning_dm8.tables.query import write_query
from lightning_dm8.tables.registry import DatasetInfo
from lightning_dm8.tables.writer import write_arrays, write_dataset

__all__ = [
    "CheckpointCorruptError",
    "CheckpointNotFoundError",
    "DM8Checkpoint",
    "DM8CheckpointIO",
    "DM8PredictionWriter",
    "InvalidCheckpointPathError",
    "delete_checkpoints",
    "export_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "DM8DataModule",
    "PASSWORD_ENV",
    "AuthenticationError",
    "Database",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DatasetInfo",
    "DatasetTable",
    "InvalidDatasetError",
    "InvalidInputError",
    "LightningDM8Error",
    "MissingDriverError",
    "TableExistsError",
    "TableNotFoundError",
    "mask_url",
    "write_arrays",
    "write_dataset",
    "write_query",
]
