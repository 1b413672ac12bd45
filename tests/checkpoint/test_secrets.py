"""No secrets at rest: a run on a URL with a password leaves it in no file, no model-table row, no checkpoint."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import torch
from lightning.pytorch.loggers import CSVLogger
from sqlalchemy.engine import make_url

from lightning_dm8.checkpoint import CheckpointSecretError, DM8Checkpoint, DM8CheckpointIO, load_checkpoint
from lightning_dm8.checkpoint.schema import model_tables
from lightning_dm8.checkpoint.secrets import mask_secrets, secrets_of
from lightning_dm8.db.engine import Database
from lightning_dm8.db.urls import PASSWORD_ENV

from .tiny import TinyClassifier, loader, trainer


@pytest.fixture
def user_url(backend: str, db_url: str) -> Iterator[tuple[str, str]]:
    """A throwaway MariaDB user whose password has characters that URLs escape; dropped afterwards."""
    user = f"ldm8_{uuid.uuid4().hex[:8]}"
    password = f"Pw@{uuid.uuid4().hex[:16]}/x"
    admin = Database(db_url)
    hosts = ("%%", "localhost", "127.0.0.1")  # '%%': exec_driver_sql goes through PyMySQL's %-formatting
    with admin.begin() as conn:
        for host in hosts:
            conn.exec_driver_sql(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
            conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON test.* TO '{user}'@'{host}'")
    url = make_url(db_url).set(username=user, password=password).render_as_string(hide_password=False)
    try:
        yield url, password
    finally:
        with admin.begin() as conn:
            for host in hosts:
                conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'{host}'")
        admin.dispose()


class _Opaque:
    """Something masking cannot look into."""

    def __init__(self, secret: str) -> None:
        self.secret = secret


@pytest.mark.parametrize("backend", ["mysql"])
def test_a_password_in_the_url_lands_nowhere(backend: str, user_url: tuple[str, str], models: str, tmp_path) -> None:
    url, password = user_url
    escaped = make_url(url).render_as_string(hide_password=False).split("//", 1)[1].split("@127")[0].split(":", 1)[1]
    assert escaped != password  # the URL spells it escaped; both spellings must stay out
    needles = {password.encode(), escaped.encode()}

    log_file = tmp_path / "run.log"
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        torch.manual_seed(0)
        model = TinyClassifier(note=f"trained from {url} with password {password}")
        callback = DM8Checkpoint(url, "secret-run", table=models, monitor="val_loss")
        fitted = trainer(tmp_path, [callback], logger=CSVLogger(tmp_path, name="logs"))
        fitted.fit(model, loader(), loader(seed=1))
        fitted.save_checkpoint(tmp_path / "manual.ckpt")  # an ordinary file goes through the same masking
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    assert model.hparams.note.endswith(password)  # the live hyperparameters are untouched

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"run.log", "hparams.yaml", "metrics.csv", "manual.ckpt"}
    assert log_file.stat().st_size > 0
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), f"the password is in {path}"

    db = Database(url)
    tables = model_tables(models, db.backend)
    with db.connect() as conn:
        rows = [tuple(r) for t in (tables.header, tables.chunks) for r in conn.execute(sa.select(t))]
    assert len(rows) >= 3 and any(isinstance(v, bytes) for row in rows for v in row)  # headers and chunk bytes
    for row in rows:
        for value in row:
            text = value if isinstance(value, bytes) else str(value).encode()
            assert not any(n in text for n in needles), f"the password is in the model table: {row[:3]}"

    loaded = load_checkpoint(url, "secret-run", "best", table=models)
    assert loaded["hyper_parameters"]["note"].endswith("with password ***")
    assert "***@" in loaded["hyper_parameters"]["note"]
    with pytest.raises(CheckpointSecretError, match=PASSWORD_ENV):
        DM8CheckpointIO(url, table=models).save_checkpoint({"opaque": _Opaque(password)}, "dm8:secret-run:leak")
    db.dispose()


def test_masking_copies_only_what_changes_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-the-env")
    secrets = secrets_of(Database("postgresql://u@h/db"))
    assert "from-the-env" in secrets
    weights = torch.ones(3)
    nested = {"state_dict": {"w": weights}, "hparams": {"url": "postgresql://u:from-the-env@h/db", "lr": 0.1},
              "list": ["a", ("from-the-env", 2)], "db": Database("postgresql://u@h/db")}
    masked = mask_secrets(nested, secrets)
    assert masked["state_dict"] is nested["state_dict"] and masked["state_dict"]["w"] is weights
    assert masked["hparams"]["url"] == "postgresql://u:***@h/db"
    assert masked["list"] == ["a", ("***", 2)]
    assert masked["db"] == "postgresql+psycopg://u:***@h/db"
    assert nested["hparams"]["url"].endswith("from-the-env@h/db")  # the input is not modified
    assert "from-the-env" not in repr(masked)
    plain = {"state_dict": {"w": weights}, "hparams": {"url": "postgresql://u@h/db", "note": "tabular"}}
    assert mask_secrets(plain, ()) is plain  # nothing to mask: nothing copied


def test_short_passwords_are_masked_in_urls_but_not_searched_for_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    secrets = secrets_of(Database("postgresql://u:ab@h/db"))
    assert secrets == ()  # "ab" searched for everywhere would turn "tabular" into "t***ular"
    masked = mask_secrets({"note": "tabular ab", "url": "postgresql://u:ab@h/db", "query": "mysql://u@h/x?password=a"},
                          secrets)
    assert masked == {"note": "tabular ab", "url": "postgresql://u:***@h/db", "query": "mysql://u@h/x?password=***"}
    assert secrets_of(Database("postgresql://u:p%40ss1@h/db")) == ("p%40ss1", "p@ss1")
