"""Fingerprints: a function of every stored value in order, chained on append, and what a written table reports."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_dm8 import Database, DatasetTable, write_arrays
from lightning_dm8.tables.fingerprint import Fingerprint


def digest(*rows: tuple, previous: str | None = None) -> str:
    fp = Fingerprint(previous)
    for row in rows:
        fp.update(row)
    return fp.hexdigest()


def test_deterministic_and_sha256_sized() -> None:
    rows = [(0, b"\x01\x02", 3), (1, "数据 😀", 4.5)]
    assert digest(*rows) == digest(*rows)
    assert len(digest(*rows)) == 64 and int(digest(*rows), 16) >= 0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([(0, b"a", 1), (1, b"b", 2)], [(1, b"b", 2), (0, b"a", 1)]),  # order
        ([(0, b"ab", b"c")], [(0, b"a", b"bc")]),  # value boundaries (length prefixes)
        ([(0, b"x", 1)], [(0, b"x", 1.0)]),  # int and float labels differ
        ([(0, b"x", 1)], [(0, b"x", 2)]),  # one label
        ([(0, b"x" * 100, 1)], [(0, b"x" * 99 + b"y", 1)]),  # one byte
        ([(0, 0.1)], [(0, 0.1 + 2**-55)]),  # one bit of a float
    ],
    ids=["order", "boundaries", "int-vs-float", "label", "byte", "float-bit"],
)
def test_any_difference_changes_it(a: list[tuple], b: list[tuple]) -> None:
    assert digest(*a) != digest(*b)


def test_chained_on_append() -> None:
    head = digest((0, b"a", 1))
    appended = digest((1, b"b", 2), previous=head)
    assert appended != digest((0, b"a", 1), (1, b"b", 2))
    assert appended != digest((1, b"b", 2))
    assert appended == digest((1, b"b", 2), previous=head)


def test_written_table_reports_the_fingerprint_of_its_rows(db: Database, table_name: str) -> None:
    """The registry's fingerprint is the one of the rows as stored: (row_id, encoded features, label)."""
    features = np.random.default_rng(4).integers(0, 256, (20, 3, 2), dtype=np.uint8)
    info = write_arrays(db, table_name, features, np.arange(20) % 3, progress=False)
    block = DatasetTable(db, table_name).read_range(0, 20)
    columns = zip(block.row_ids, block.features, block.labels, strict=True)
    rows = [(int(i), f.tobytes(), int(label)) for i, f, label in columns]
    assert info.fingerprint == digest(*rows)
