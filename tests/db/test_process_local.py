"""ProcessLocal: one resource per process, forgotten (not closed) after fork, safe with threads on both sides."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading

from lightning_dm8.db.process_local import ProcessLocal


def _child_two_threads(local: ProcessLocal[tuple[int, int]], forgotten: list, queue) -> None:
    try:
        results: list[object] = []
        threads = [threading.Thread(target=lambda: results.append(local.get())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        queue.put((results, len(forgotten)))
    except BaseException as exc:  # report instead of leaving the parent waiting
        queue.put(repr(exc))


def test_a_forked_child_opens_its_own_once_and_forgets_the_inherited_one() -> None:
    forgotten: list[object] = []
    opened: list[int] = []

    def factory() -> tuple[int, int]:
        opened.append(os.getpid())
        return (os.getpid(), len(opened))

    local: ProcessLocal[tuple[int, int]] = ProcessLocal(factory, forget=forgotten.append)
    parent_value = local.get()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_child_two_threads, args=(local, forgotten, queue))
    process.start()
    result = queue.get(timeout=30)
    process.join(30)
    assert not isinstance(result, str), result
    values, forgotten_in_child = result
    assert len(values) == 2 and values[0] == values[1] and values[0][0] == process.pid  # one resource, the child's
    assert forgotten_in_child == 1  # the parent's was forgotten once, never handed to forget as None
    assert local.get() == parent_value  # the parent's own is untouched


def _child_get(local: ProcessLocal[int], queue) -> None:
    queue.put(local.get())


def test_a_lock_held_by_a_parent_thread_at_the_fork_does_not_hang_the_child() -> None:
    local: ProcessLocal[int] = ProcessLocal(os.getpid)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    with local._lock:  # as a parent thread inside get() at the moment another thread forks
        process = context.Process(target=_child_get, args=(local, queue))
        process.start()
    assert queue.get(timeout=30) == process.pid
    process.join(30)


def test_pickling_carries_nothing_opened() -> None:
    local: ProcessLocal[int] = ProcessLocal(os.getpid)
    local.get()
    clone = pickle.loads(pickle.dumps(local))
    assert clone.peek() is None and clone.get() == os.getpid()
