"""The project's exceptions: every failure a user can act on has its own class and a message saying what to do."""

from __future__ import annotations


class LightningDM8Error(Exception):
    """Base class of every error raised by lightning_dm8."""


class DatabaseUnavailableError(LightningDM8Error, ConnectionError):
    """The server could not be reached (refused, timed out, connection lost); retrying may help."""


class AuthenticationError(LightningDM8Error, PermissionError):
    """The server refused the user name or password."""


class MissingDriverError(LightningDM8Error, ImportError):
    """The Python driver for the URL's database is not installed."""


class TableNotFoundError(LightningDM8Error, LookupError):
    """A table (or the dataset registry entry for it) does not exist."""


class TableExistsError(LightningDM8Error):
    """A table already exists and ``if_exists="fail"`` was asked for."""


class InvalidDatasetError(LightningDM8Error, ValueError):
    """A dataset table breaks the contract: row ids not dense, metadata out of step, corrupt rows."""


class InvalidInputError(LightningDM8Error, ValueError):
    """Data given to a writer cannot be stored as a dataset (empty, mismatched lengths, mixed shapes or dtypes)."""


class DatabaseError(LightningDM8Error):
    """Any other error reported by the database driver, with the statement's context."""


class ConstraintViolationError(DatabaseError):
    """The database refused a row for a key or constraint: above all, another process wrote the same key first."""
