"""Checkpoint errors: each names the table, run and version involved and says what to do."""

from __future__ import annotations

import pickle

from lightning_dm8.errors import LightningDM8Error


class CheckpointNotFoundError(LightningDM8Error, FileNotFoundError):
    """No complete checkpoint matches the run and version asked for.

    A ``FileNotFoundError`` too, which is what Lightning expects from a ``CheckpointIO`` for a missing checkpoint.
    """


class CheckpointCorruptError(LightningDM8Error, ValueError):
    """A stored checkpoint's bytes do not match its recorded size or SHA-256: it must not be loaded."""


class InvalidCheckpointPathError(LightningDM8Error, ValueError):
    """A ``ckpt_path`` (or a run name) that does not follow the ``dm8:<run>:<selector>`` form."""


class CheckpointConflictError(LightningDM8Error):
    """A save lost its row to another writer of the same run (two processes saving under one run name)."""


class CheckpointSecretError(LightningDM8Error, ValueError):
    """The serialised checkpoint still holds the database password inside an object that cannot be masked."""


class UnsafeCheckpointError(LightningDM8Error, pickle.UnpicklingError):
    """A stored checkpoint holds objects that ``torch.load(weights_only=True)`` does not rebuild.

    Loads from the database rebuild only tensors and plain data, so that nothing stored there can run code. A
    checkpoint the caller trusts loads with ``weights_only=False`` (or with its classes allowed through
    ``torch.serialization.add_safe_globals``).
    """


class UnsafeLoadWarning(UserWarning):
    """A checkpoint is being loaded from the database with ``weights_only=False``: unpickling it can run code."""
