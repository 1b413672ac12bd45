"""lightning_dm8: train PyTorch Lightning models straight from relational database tables.

Public API, re-exported here; modules inside the package import from their own homes, never from here.
"""

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
from lightning_dm8.tables.dataset_table import DatasetTable
from lightning_dm8.tables.query import write_query
from lightning_dm8.tables.registry import DatasetInfo
from lightning_dm8.tables.writer import write_arrays, write_dataset

__all__ = [
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
