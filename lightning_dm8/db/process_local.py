"""One helper for resources that belong to a single process: engines, connections, LMDB environments, threads.

DataLoader workers fork or spawn and DDP spawns; a resource opened in the parent must never be used (or closed)
in the child, and must never travel through pickle. :class:`ProcessLocal` opens its resource lazily in the process
that asks for it, forgets an inherited one after a fork (through ``forget``, which must not close what the parent
still uses), and pickles as empty.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_INSTANCES: weakref.WeakSet[ProcessLocal[Any]] = weakref.WeakSet()


def _renew_locks() -> None:
    """In a forked child, before any of its threads runs: a parent thread may have held a lock at the fork, and no
    thread of the child would ever release it."""
    for instance in list(_INSTANCES):
        instance._lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_locks)


class ProcessLocal(Generic[T]):
    """A resource made by ``factory`` on first use in each process.

    Args:
        factory: opens the resource (called under a lock, at most once per process until ``close``).
        close: releases a resource this process opened (``close()``).
        forget: drops a resource inherited through fork without touching the parent's side (default: nothing).
    """

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        close: Callable[[T], Any] | None = None,
        forget: Callable[[T], Any] | None = None,
    ) -> None:
        self._factory = factory
        self._close = close
        self._forget = forget
        self._value: T | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        _INSTANCES.add(self)

    def get(self) -> T:
        """This process's resource, opened now if it has none yet."""
        value, pid = self._value, self._pid
        if value is not None and pid == os.getpid():
            return value
        with self._lock:
            if self._value is not None and self._pid != os.getpid():
                inherited, self._value = self._value, None
                if inherited is not None and self._forget is not None:
                    self._forget(inherited)
            if self._value is None:
                self._value = self._factory()
                self._pid = os.getpid()
            return self._value

    def peek(self) -> T | None:
        """The resource if this process opened one, else None (never opens one)."""
        return self._value if self._pid == os.getpid() else None

    def close(self) -> None:
        """Release the resource if this process opened it; an inherited one is only forgotten."""
        with self._lock:
            value, self._value = self._value, None
            mine = self._pid == os.getpid()
            self._pid = None
        if value is None:
            return
        if mine and self._close is not None:
            self._close(value)
        elif not mine and self._forget is not None:
            self._forget(value)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_value=None, _pid=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        _INSTANCES.add(self)
