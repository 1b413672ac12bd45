"""Batches for :class:`~examples.agnews_text.model.TextClassificationModel`: token ids of a whole batch in one flat
tensor plus each text's start offset, the input ``nn.EmbeddingBag`` takes (as in PyTorch's text classification
tutorial). Use it as ``DM8DataModule(collate_fn="examples.agnews_text.collate.collate_batch")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def collate_batch(samples: Sequence[Any]) -> tuple[torch.Tensor, ...]:
    """``[(token_ids, label), ...]`` -> ``(text, offsets, labels)``.

    ``token_ids`` are 1-d integer arrays or tensors of any length (0 too); ``text`` is their int64 concatenation,
    ``offsets`` the int64 start of each sample in it and ``labels`` int64. Unlabelled samples (a predict table,
    where each sample is the token ids alone) give ``(text, offsets)``.
    """
    if not samples:
        raise ValueError("collate_batch got an empty batch")
    labelled = isinstance(samples[0], tuple)
    tokens = [torch.as_tensor(np.asarray(s[0] if labelled else s), dtype=torch.int64).reshape(-1) for s in samples]
    lengths = torch.tensor([len(t) for t in tokens], dtype=torch.int64)
    offsets = torch.cumsum(lengths, 0) - lengths
    text = torch.cat(tokens)
    if not labelled:
        return text, offsets
    labels = torch.tensor([int(s[1]) for s in samples], dtype=torch.int64)
    return text, offsets, labels
