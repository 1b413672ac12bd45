"""Content fingerprints: a SHA-256 over every stored value, chained on append, so any new content changes it."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

_INT = struct.Struct("<q")
_FLOAT = struct.Struct("<d")


class Fingerprint:
    """Incremental fingerprint of rows ``(row_id, *values)`` in row id order."""

    def __init__(self, previous: str | None = None) -> None:
        self._hash = hashlib.sha256()
        if previous:
            self._hash.update(b"append-to:" + previous.encode("ascii"))

    def update(self, row: tuple[Any, ...]) -> None:
        h = self._hash
        for value in row:
            if isinstance(value, (bytes, bytearray, memoryview)):
                h.update(_INT.pack(len(value)))
                h.update(value)
            elif isinstance(value, str):
                data = value.encode("utf-8")
                h.update(_INT.pack(len(data)))
                h.update(data)
            elif isinstance(value, float):
                h.update(_FLOAT.pack(value))
            else:
                h.update(_INT.pack(int(value)))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
