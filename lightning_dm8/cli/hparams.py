"""Hyperparameters of a stored checkpoint, shown without running anything stored in it.

``checkpoints show --hparams`` loads the checkpoint with ``weights_only=True`` (tensors and plain data only). When
that refuses an object, the hyperparameters are read again by :class:`ReferenceUnpickler`, which never imports or
calls what the pickle names: every class or function reference becomes a :class:`NotLoaded` placeholder that shows
the name (and plain arguments) it stood for. Only a handful of data types are rebuilt for real.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
import zipfile
from collections.abc import Callable
from typing import Any

_SAFE_TYPES: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
}
"""Data types rebuilt for real: constructing them runs no code of the checkpoint's choosing."""

_PLAIN = (str, bytes, int, float, bool, type(None))


class NotLoaded:
    """Stands for an object the checkpoint names by reference (``module.name``): never imported, never called."""

    ref = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        shown = ", ".join(repr(a) for a in self.args if isinstance(a, _PLAIN))
        text = f"{self.ref}({shown})" if shown else self.ref
        return f"<not loaded: {text[:120]}>"


def _latin1_bytes(text: str = "", encoding: str = "latin1", *_: Any) -> bytes | NotLoaded:
    """``_codecs.encode``, which protocol-2 pickles use for ``bytes``: allowed for latin-1 only."""
    if encoding in ("latin1", "latin-1") and isinstance(text, str):
        return codecs.encode(text, "latin1")
    return _reference("_codecs", "encode")(text, encoding)


def _reconstructor(cls: Any, base: Any = None, state: Any = None) -> Any:
    """``copyreg._reconstructor`` (how protocol 2 pickles plain objects): a placeholder of the class it names."""
    return cls() if isinstance(cls, type) and issubclass(cls, NotLoaded) else _reference("copyreg", "_reconstructor")()


_SAFE_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("copyreg", "_reconstructor"): _reconstructor,
}


_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _reference(module: str, name: str) -> type[NotLoaded]:
    return type(name, (NotLoaded,), {"ref": f"{module}.{name}"})


class ReferenceUnpickler(pickle.Unpickler):
    """An unpickler whose globals are placeholders (and tensor storages nothing): it rebuilds the data structure
    of a pickle without running any of its code. ``refs`` lists the names it did not load."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.refs: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        module = _PYTHON2_MODULES.get(module, module)  # what the base class's fix_imports does for protocol < 3
        key = (module, name)
        if key in _SAFE_TYPES:
            return _SAFE_TYPES[key]
        if key in _SAFE_FUNCTIONS:
            return _SAFE_FUNCTIONS[key]
        self.refs.append(f"{module}.{name}")
        return _reference(module, name)

    def persistent_load(self, pid: Any) -> Any:  # tensor storages: not needed to show hyperparameters
        return None


def read_hyperparameters(payload: bytes | bytearray) -> tuple[dict[str, Any], list[str]]:
    """The ``hyper_parameters`` of a ``torch.save`` payload, read by :class:`ReferenceUnpickler`, and the
    references (``module.name``) shown as placeholders among them."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (name,) = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")][:1] or [""]
        if not name:
            raise pickle.UnpicklingError("the checkpoint holds no data.pkl")
        unpickler = ReferenceUnpickler(io.BytesIO(archive.read(name)))
    checkpoint = unpickler.load()
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict):
        return {}, []
    return hparams, sorted({ref for ref in unpickler.refs if ref in repr(hparams)})
