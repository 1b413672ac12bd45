"""What may come back from the model table: tensors and plain data, never code.

A checkpoint is a pickle, and unpickling can call any importable function: whoever can write the model table could
make every process that loads from it run a command. So every load from the database goes through
``torch.load(weights_only=True)``, which rebuilds tensors, containers and primitive values and refuses anything else
with :class:`UnsafeCheckpointError`. A caller that trusts a checkpoint (saved by itself, in a model table nobody else
can write) opts out with ``weights_only=False``, and an :class:`UnsafeLoadWarning` says so each time; ``None`` (what
Lightning passes when ``trainer.fit(..., weights_only=...)`` is not given) means ``True``.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from typing import IO, Any, cast

import torch

from lightning_dm8.checkpoint.errors import UnsafeCheckpointError, UnsafeLoadWarning

_REFUSED = re.compile(r"WeightsUnpickler error: (.*?)(?: Please use| Check the documentation|\n|$)", re.S)


def load_payload(
    file: io.RawIOBase | IO[bytes], map_location: Any, weights_only: bool | None, what: str
) -> dict[str, Any]:
    """``torch.load`` of the verified bytes of ``what`` (e.g. "checkpoint 'r' version 3 in model table ..."):
    data only unless ``weights_only`` is False."""
    # torch.load reads any object with read/readinto/seek; its annotation asks for IO[bytes].
    source = cast(IO[bytes], file)
    if weights_only is False:
        warnings.warn(
            f"loading {what} with weights_only=False: unpickling it can run any code stored in it. Do this only for a "
            f"checkpoint you saved yourself, in a model table nobody else can write.",
            UnsafeLoadWarning,
            stacklevel=4,  # the caller of load_checkpoint / CheckpointIO.load_checkpoint, who chose to opt out
        )
        return torch.load(source, map_location=map_location, weights_only=False)
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
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


class PayloadReader(io.RawIOBase):
    """A read-only, seekable file over a buffer, for ``torch.load``: it reads with ``readinto`` straight into the
    tensors' storage. ``io.BytesIO`` would first copy anything but ``bytes`` (100 MB: about 0.1 s)."""

    def __init__(self, buffer: bytearray | bytes) -> None:
        super().__init__()
        self._view = memoryview(buffer).cast("B")
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, target: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        out = memoryview(target).cast("B")
        count = max(0, min(len(out), len(self._view) - self._position))
        out[:count] = self._view[self._position : self._position + count]
        self._position += count
        return count
