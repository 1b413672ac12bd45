"""No secrets at rest: the database password is masked out of checkpoints and logged hyperparameters.

The password of the URL in use (and ``LIGHTNING_DM8_PASSWORD``) is replaced by ``***`` in every string of a
checkpoint before it is serialised; URL and :class:`Database` objects become their masked text. What cannot be
masked (a custom object holding the password) is caught afterwards by scanning the pickled part of the file, so
such a checkpoint is refused rather than stored.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import torch
from sqlalchemy.engine import URL

from lightning_dm8.checkpoint.errors import CheckpointSecretError
from lightning_dm8.db.engine import Database
from lightning_dm8.db.urls import PASSWORD_ENV, mask_url

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter passwords are not masked: replacing a 1-3 character string everywhere would mangle ordinary values."""


def secrets_of(db: Database) -> tuple[str, ...]:
    """The texts to mask for ``db``: its password, the environment's, and their URL-escaped spellings."""
    found: list[str] = []
    for password in (db.sa_url.password, os.environ.get(PASSWORD_ENV)):
        if password and len(password) >= MIN_SECRET_LENGTH:
            found += [password, quote(password, safe=""), quote_plus(password)]
    return tuple(sorted(set(found), key=len, reverse=True))


def _mask_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_secrets(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every secret masked. Containers are copied only where something changed: the input (the
    model's own hyperparameters among them) is never modified, and tensors are never copied."""
    if not secrets or isinstance(value, (torch.Tensor, int, float, bool, type(None))):
        return value
    if isinstance(value, str):
        return _mask_text(value, secrets)
    if isinstance(value, URL):
        return _mask_text(mask_url(value), secrets)
    if isinstance(value, Database):
        return _mask_text(value.url, secrets)
    if isinstance(value, bytes):
        masked = value
        for secret in secrets:
            masked = masked.replace(secret.encode(), MASK.encode())
        return masked
    if isinstance(value, Mapping):
        items = {k: mask_secrets(v, secrets) for k, v in value.items()}
        if all(items[k] is value[k] for k in items):
            return value
        try:
            return type(value)(items)  # dict subclasses: AttributeDict, OrderedDict, ...
        except TypeError:
            return items
    if isinstance(value, (list, tuple)):
        items_list = [mask_secrets(v, secrets) for v in value]
        if all(a is b for a, b in zip(items_list, value)):
            return value
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*items_list)  # namedtuple
        return type(value)(items_list)
    if isinstance(value, argparse.Namespace):  # jsonargparse's Namespace too (LightningCLI hyperparameters)
        masked_attrs = mask_secrets(vars(value), secrets)
        if masked_attrs is vars(value):
            return value
        clone = copy.copy(value)
        clone.__dict__.update(masked_attrs)
        return clone
    return value


def serialize_checkpoint(checkpoint: Mapping[str, Any], secrets: tuple[str, ...], where: str) -> bytes:
    """``torch.save`` of the masked checkpoint; refuses (naming ``where``) when a secret survives in the pickle."""
    buffer = io.BytesIO()
    torch.save(mask_secrets(checkpoint, secrets), buffer)
    payload = buffer.getvalue()
    leaked = _secret_in_pickle(payload, secrets)
    if leaked:
        raise CheckpointSecretError(
            f"refusing to store checkpoint {where}: it still contains the database password inside an object that "
            f"cannot be masked (often a custom object in the hyperparameters). Exclude it with "
            f"save_hyperparameters(ignore=[...]) and put the password in the environment variable {PASSWORD_ENV} "
            f"instead of the URL."
        )
    return payload


def _secret_in_pickle(payload: bytes, secrets: tuple[str, ...]) -> bool:
    """Search the pickled object graph (not the tensor storages, whose bytes could match by chance)."""
    if not secrets:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            pickles = [archive.read(n) for n in archive.namelist() if n.endswith(".pkl")]
    except zipfile.BadZipFile:
        pickles = [payload]
    return any(secret.encode() in blob for blob in pickles for secret in secrets)


def mask_logged_hparams(obj: Any, secrets: tuple[str, ...]) -> None:
    """Mask the copy of hyperparameters that loggers write (``hparams_initial``), leaving the live ones alone.

    Lightning logs ``obj.hparams_initial``, a deep copy of the private ``_hparams_initial`` taken by
    ``save_hyperparameters`` (``core/mixins/hparams_mixin.py``, ``loggers/utilities.py::_log_hyperparams``).
    """
    initial = getattr(obj, "_hparams_initial", None)
    if initial is not None and secrets:
        obj._hparams_initial = mask_secrets(initial, secrets)
