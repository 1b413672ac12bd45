"""From ``predict_step`` outputs and the predict dataloader to table rows: pure logic, no database.

Outputs understood, per batch of n rows:

* a float tensor ``(n, C)`` with C > 1: logits; ``prediction`` = argmax, ``scores`` = softmax (float32);
* a tensor ``(n,)`` or ``(n, 1)``: class ids (integer dtype) or values (floating dtype), no scores;
* a dict with ``"prediction"`` (as above, 1-D) and optionally ``"scores"`` (``(n, C)``, stored as given).

Row ids come from the dataloader's ``pop_row_ids()`` when it has one (a FIFO of the ids of yielded batches, so
Lightning fetching a batch ahead does not shift them), else from Lightning's ``batch_indices``, else from a running
position (single process only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader

from lightning_dm8.tables.codecs import as_numpy

_NO_NUMPY_DTYPE = (torch.float16, torch.bfloat16)
"""Half precisions are widened first: NumPy has no bfloat16, and float16 scores would be stored rounded."""


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor) and value.dtype in _NO_NUMPY_DTYPE:
        value = value.float()
    return np.asarray(as_numpy(value))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _column(values: np.ndarray, what: str) -> np.ndarray:
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 0:
        values = values.reshape(1)
    if values.ndim != 1:
        raise TypeError(f"{what} must hold one value per row; got shape {values.shape}")
    if values.dtype == np.bool_ or np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float64)
    raise TypeError(f"{what} must be integer class ids or float values; got dtype {values.dtype}")


def decode_outputs(outputs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(prediction, scores)`` of a batch: prediction int64/float64 ``(n,)``, scores float32 ``(n, C)`` or None."""
    if isinstance(outputs, Mapping):
        if "prediction" not in outputs:
            raise TypeError(f"a predict_step dict needs a 'prediction' entry; got keys {sorted(outputs)}")
        prediction = _column(_array(outputs["prediction"]), "outputs['prediction']")
        scores = outputs.get("scores")
        if scores is None:
            return prediction, None
        score_array = _array(scores).astype(np.float32).reshape(len(prediction), -1)
        return prediction, score_array
    if not isinstance(outputs, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(
            f"DM8PredictionWriter cannot store a predict_step output of type {type(outputs).__name__}: return "
            f"logits (n, C), a tensor of n class ids or values, or a dict with 'prediction' (and 'scores')"
        )
    values = _array(outputs)
    if values.ndim == 2 and values.shape[1] > 1:
        if not np.issubdtype(values.dtype, np.floating):
            raise TypeError(f"logits must be floating point; got dtype {values.dtype}")
        return values.argmax(axis=1).astype(np.int64), softmax(values)
    return _column(values, "the predict_step output"), None


def current_loader(loaders: Any, dataloader_idx: int) -> Any:
    """The predict dataloader that produced ``dataloader_idx``: ``trainer.predict_dataloaders`` may be one loader,
    a list/tuple/dict of them, or a ``CombinedLoader``."""
    if isinstance(loaders, CombinedLoader):
        loaders = loaders.flattened
    if isinstance(loaders, Mapping):
        loaders = list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        return loaders[dataloader_idx] if 0 <= dataloader_idx < len(loaders) else None
    return loaders


class RowIds:
    """Hands out the row ids of each predicted batch, by the first source that applies (see the module doc)."""

    def __init__(self, distributed: bool) -> None:
        self.distributed = distributed
        self.position = 0

    def next(self, loader: Any, batch_indices: Sequence[int] | None, count: int) -> np.ndarray:
        pop = getattr(loader, "pop_row_ids", None)
        if callable(pop):
            ids = np.asarray(pop(), dtype=np.int64).reshape(-1)
            source = "the predict dataloader's pop_row_ids()"
        elif batch_indices is not None and len(batch_indices) > 0:
            ids = np.asarray(batch_indices, dtype=np.int64).reshape(-1)
            source = "Lightning's batch indices"
        elif self.distributed:
            raise RuntimeError(
                "DM8PredictionWriter cannot tell the row ids of a batch under a distributed strategy: the predict "
                "dataloader has no pop_row_ids() and Lightning gives no batch indices for it"
            )
        else:
            ids = np.arange(self.position, self.position + count, dtype=np.int64)
            source = "the running position"
        if len(ids) != count:
            raise RuntimeError(f"{source} gave {len(ids)} row ids for a batch of {count} predictions")
        self.position += count
        return ids
