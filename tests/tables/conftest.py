"""Fixtures of the dataset-table tests: a Database per test and a record of the staging tables writers create."""

from __future__ import annotations

import pytest

from lightning_dm8.tables import writer


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the staging tables created during the test (recorded, then created as usual).

    Other test runs may share the servers, so leftovers are looked up by name rather than by ``ldm8_tmp_*``.
    """
    names: list[str] = []
    create = writer.create_dataset_table

    def recording(conn, backend, table, codec) -> None:
        names.append(table.name)
        create(conn, backend, table, codec)

    monkeypatch.setattr(writer, "create_dataset_table", recording)
    return names
