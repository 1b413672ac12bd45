"""No secrets at rest: the database password is masked out of checkpoints, logged hyperparameters and configs.

Two layers, applied to every string of a checkpoint (or a config) before it is serialised:

* **By URL structure** (:func:`lightning_dm8.db.urls.mask_text`): the password of any URL's user-info and any
  ``password=``-like query parameter become ``***``, whatever their length. The structure says where the secret is,
  so nothing else in the text is touched, and a one-character password is masked as surely as a long one.
* **By text search**: the passwords known to be in use (the URL's and ``LIGHTNING_DM8_PASSWORD``, in each URL
  spelling) are replaced wherever they appear, e.g. in a free-text note. Only from :data:`MIN_SECRET_LENGTH`
  characters on: replacing a 1-3 character string everywhere would mangle ordinary values (a password ``ab`` would
  turn ``"tabular"`` into ``"t***ular"``), while the structural layer still masks such a password where it sits in a
  URL.

URL and :class:`Database` objects become their masked text. What cannot be masked (a custom object holding the
password) is caught afterwards by scanning the pickled part of the file, so such a checkpoint is refused rather than
stored.
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
from lightning_dm8.db.urls import MASK, PASSWORD_ENV, mask_text, mask_url

MIN_SECRET_LENGTH = 4
"""Shorter passwords are masked by URL structure only: searching for a 1-3 character string everywhere would mangle
ordinary values."""


def _spellings(passwords: Iterable[str | None]) -> tuple[str, ...]:
    found: list[str] = []
    for password in passwords:
        if password and len(password) >= MIN_SECRET_LENGTH:
            found += [password, quote(password, safe=""), quote_plus(password)]
    return tuple(sorted(set(found), key=len, reverse=True))


def environment_secrets() -> tuple[str, ...]:
    """The texts to mask whatever the database: ``LIGHTNING_DM8_PASSWORD`` and its URL-escaped spellings."""
    return _spellings([os.environ.get(PASSWORD_ENV)])


def secrets_of(db: Database) -> tuple[str, ...]:
    """The texts to mask for ``db``: its password, the environment's, and their URL-escaped spellings."""
    return _spellings([db.sa_url.password, os.environ.get(PASSWORD_ENV)])


def _mask_text(text: str, secrets: Iterable[str]) -> str:
    masked = mask_text(text)
    text = text if masked == text else masked  # unchanged text stays the same object: its container is not copied
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_secrets(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """``value`` with every URL masked and every one of ``secrets`` replaced (see the module doc). Containers are
    copied only where something changed: the input (the model's own hyperparameters among them) is never modified,
    and tensors are never copied."""
    if isinstance(value, (torch.Tensor, int, float, bool, type(None))):
        return value
    if isinstance(value, str):
        return _mask_text(value, secrets)
    if isinstance(value, URL):
        return _mask_text(mask_url(value), secrets)
    if isinstance(value, Database):
        return _mask_text(value.url, secrets)
    if isinstance(value, bytes):
        return _mask_bytes(value, secrets)
    if isinstance(value, Mapping):
        return _mask_mapping(value, secrets)
    if isinstance(value, (list, tuple)):
        return _mask_sequence(value, secrets)
    if isinstance(value, argparse.Namespace):  # jsonargparse's Namespace too (LightningCLI hyperparameters)
        masked_attrs = _mask_mapping(vars(value), secrets)
        if masked_attrs is vars(value):
            return value
        clone = copy.copy(value)
        clone.__dict__.update(masked_attrs)
        return clone
    return value


def _mask_bytes(value: bytes, secrets: tuple[str, ...]) -> bytes:
    masked = value
    for secret in secrets:
        masked = masked.replace(secret.encode(), MASK.encode())
    return masked if masked != value else value


def _mask_mapping(value: Mapping[Any, Any], secrets: tuple[str, ...]) -> Any:
    items = {k: mask_secrets(v, secrets) for k, v in value.items()}
    if all(items[k] is value[k] for k in items):
        return value
    kind: Any = type(value)
    try:
        return kind(items)  # dict subclasses: AttributeDict, OrderedDict, ...
    except TypeError:
        return items


def _mask_sequence(value: list[Any] | tuple[Any, ...], secrets: tuple[str, ...]) -> Any:
    items = [mask_secrets(v, secrets) for v in value]
    if all(a is b for a, b in zip(items, value, strict=True)):
        return value
    kind: Any = type(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return kind(*items)  # namedtuple
    return kind(items)


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
    if initial is not None:
        obj._hparams_initial = mask_secrets(initial, secrets)
