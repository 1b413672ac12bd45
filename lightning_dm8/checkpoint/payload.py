"""What may come back from the model table: tensors and plain data, never code.

A checkpoint is a pickle, and unpickling can call any importable function: whoever can write the model table could
make every process that loads from it run a command. So every load from the database goes through
``torch.load(weights_only=True)``, which rebuilds tensors, containers and primitive values and refuses anything else
with :class:`UnsafeCheckpointError`. A caller that trusts a checkpoint (saved by itself, in a model table nobody else
can write) opts out with ``weights_only=False``, and an :class:`UnsafeLoadWarning` says so each time; ``None`` (what
Lightning passes when ``trainer.fit(..., weights_only=...)`` is not given) means ``True``.

The verified bytes wait in a :func:`payload_file`: on Linux an anonymous in-memory file (``memfd``) that
``torch.load(mmap=True)`` maps, so the tensors are copy-on-write views of the pages the fetched bytes were written to:
the checkpoint is copied once and held once. Read from a buffer, it was copied once more into fresh tensors, and each
fresh 100 MB cost a page fault per 4 KiB (together about as long as fetching the bytes). The mapping lives as long as
any tensor of the checkpoint does.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import torch

from lightning_dm8.checkpoint.errors import UnsafeCheckpointError, UnsafeLoadWarning

_REFUSED = re.compile(r"WeightsUnpickler error: (.*?)(?: Please use| Check the documentation|\n|$)", re.S)


@contextmanager
def payload_file() -> Iterator[IO[bytes]]:
    """An empty file in memory for a checkpoint's bytes, gone when the block ends (tensors mapped from it keep their
    pages): a ``memfd`` where the system has one, else an ``io.BytesIO``."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        yield io.BytesIO()
        return
    with open(os.memfd_create("ldm8-checkpoint", os.MFD_CLOEXEC), "w+b") as file:
        yield file


def load_payload(file: IO[bytes], map_location: Any, weights_only: bool | None, what: str) -> dict[str, Any]:
    """``torch.load`` of the verified bytes of ``what`` (e.g. "checkpoint 'r' version 3 in model table ...") in
    ``file``, a :func:`payload_file`: data only unless ``weights_only`` is False."""
    file.flush()
    file.seek(0)
    # A memfd is mapped through its /proc name: torch.load maps only paths.
    source: IO[bytes] | str = file if isinstance(file, io.BytesIO) else f"/proc/self/fd/{file.fileno()}"
    mapped = isinstance(source, str)
    if weights_only is False:
        warnings.warn(
            f"loading {what} with weights_only=False: unpickling it can run any code stored in it. Do this only for a "
            f"checkpoint you saved yourself, in a model table nobody else can write.",
            UnsafeLoadWarning,
            stacklevel=4,  # the caller of load_checkpoint / CheckpointIO.load_checkpoint, who chose to opt out
        )
        return torch.load(source, map_location=map_location, weights_only=False, mmap=mapped)
    try:
        return torch.load(source, map_location=map_location, weights_only=True, mmap=mapped)
    except pickle.UnpicklingError as exc:
        found = _REFUSED.search(str(exc))
        refused = found.group(1).strip() if found else str(exc).splitlines()[0]
        raise UnsafeCheckpointError(
            f"{what} was not loaded: it holds an object that only running code can rebuild ({refused}). Loads from "
            f"the database rebuild only tensors and plain data (weights_only=True), so that nothing stored there "
            f"runs. If you trust this checkpoint (you saved it yourself and nobody else can write the model table), "
            f"allow its classes with torch.serialization.add_safe_globals([...]), or load it with weights_only=False: "
            f"load_checkpoint(..., weights_only=False) or trainer.fit/validate/test/predict(..., weights_only=False)."
        ) from exc
