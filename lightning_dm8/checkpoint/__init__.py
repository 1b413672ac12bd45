"""Checkpoints in the database: ``DM8Checkpoint``, ``DM8CheckpointIO`` (predictions: :mod:`lightning_dm8.predictions`).

Usage (one callback; the password goes in the environment variable ``LIGHTNING_DM8_PASSWORD``, never in YAML)::

    trainer:
      callbacks:
        - class_path: lightning_dm8.DM8Checkpoint
          init_args: {url: "dm://SYSDBA@db:5236", run: resnet20, monitor: val_acc, mode: max, save_top_k: 2}

    trainer.fit(model, datamodule)                                  # saves into ldm8_checkpoints(_chunks)
    trainer.test(model, datamodule, ckpt_path="dm8:resnet20:best")  # also validate / predict / fit (resume)

``ckpt_path`` forms: ``dm8:<run>:best`` (by the metric and mode stored with the run), ``dm8:<run>:latest``,
``dm8:<run>:<version>``, ``dm8:<run>:<name>`` (``last``, ``epoch=3-step=400``); ordinary paths stay files.
Lightning's ``ckpt_path="last"`` searches the file system, so use ``dm8:<run>:latest``; ``ckpt_path="best"``
works in the process that trained. Without a Trainer: :func:`load_checkpoint`, :func:`list_checkpoints`,
:func:`delete_checkpoints`, :func:`export_checkpoint` (a normal ``.ckpt`` file), or
``lightning-dm8 checkpoints list|show|export|delete``.

Model table: ``<table>`` holds one header row per checkpoint (run, version, name, kind, epoch, global step,
monitored metric and mode, size, SHA-256, model class, ``complete``) and ``<table>_chunks`` the bytes in chunk rows
(32 MiB; less under MySQL's ``max_allowed_packet``). Saves are atomic (a killed save is never visible and is
cleaned by the run's next save) and every load verifies size and SHA-256. The database password is masked out of
checkpoints, the model table and the hyperparameters loggers write.

Nothing stored runs: every load from the model table rebuilds only tensors and plain data (``torch.load`` with
``weights_only=True``) and refuses anything else with :class:`UnsafeCheckpointError`, so whoever can write the table
cannot make a loading process run code. For a checkpoint you trust (you saved it, nobody else can write the table),
pass ``weights_only=False`` (``load_checkpoint(..., weights_only=False)``, ``trainer.fit(..., weights_only=False)``):
it loads any object, with an :class:`UnsafeLoadWarning`. Header rows whose sizes cannot be true are refused
(:class:`CheckpointCorruptError`) before any byte is read. Retention deletes only checkpoints of its own callback's
monitor and mode.

Modules: ``schema`` (the tables), ``paths`` (which path names which row), ``store`` (chunked, atomic, verified
bytes), ``unpickle`` (what a load may rebuild), ``policy`` (best, retention), ``records`` (header rows), ``secrets``
(masking), ``io`` (the CheckpointIO), ``callback`` (the ModelCheckpoint users add), ``api`` (functions); the command
line is in :mod:`lightning_dm8.cli`.
"""

from lightning_dm8.checkpoint.api import delete_checkpoints, export_checkpoint, list_checkpoints, load_checkpoint
from lightning_dm8.checkpoint.callback import DM8Checkpoint
from lightning_dm8.checkpoint.errors import (
    CheckpointConflictError,
    CheckpointCorruptError,
    CheckpointNotFoundError,
    CheckpointSecretError,
    InvalidCheckpointPathError,
    UnsafeCheckpointError,
    UnsafeLoadWarning,
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
    "UnsafeCheckpointError",
    "UnsafeLoadWarning",
    "checkpoint_dirpath",
    "delete_checkpoints",
    "export_checkpoint",
    "format_ckpt_path",
    "list_checkpoints",
    "load_checkpoint",
    "parse_ckpt_path",
]
