"""AG News CSV reader and writer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from lightning_dm8.importers import AGNEWS_CLASSES, load_agnews, read_agnews_csv, write_agnews_csv

ROWS = [
    (
        3,
        "Wall St. Bears Claw Back Into the Black (Reuters)",
        "Reuters - Short-sellers, Wall Street's dwindling\\band of ultra-cynics, are seeing green again.",
    ),
    (4, 'Tiny "quoted" title', 'It #39;s a \\$1,000 deal, said "the source".'),
    (1, "World, news", "Multi\nline description"),
    (2, "Sports", ""),
]


def test_read_agnews_csv_reads_a_file_written_with_the_csv_module(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows((str(c), t, d) for c, t, d in ROWS)
    texts, labels = read_agnews_csv(path)
    assert texts == [f"{title} {description}" for _, title, description in ROWS]
    assert labels.dtype == np.int64
    assert labels.tolist() == [2, 3, 0, 1]


def test_read_agnews_csv_keeps_escapes_and_entities_as_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "test.csv"
    path.write_text('"2","A ""B"" C","x\\\\y #39;z \\b"\n', encoding="utf-8")
    texts, labels = read_agnews_csv(path)
    assert texts == ['A "B" C x\\\\y #39;z \\b']
    assert labels.tolist() == [1]


def test_writer_writes_the_exact_format(tmp_path: Path) -> None:
    path = write_agnews_csv(tmp_path / "out.csv", [(3, 'Wall St. "Bears"', "short\\band, #39;s")])
    assert path.read_text(encoding="utf-8") == '"3","Wall St. ""Bears""","short\\band, #39;s"\n'


def test_load_agnews_round_trips_both_splits(tmp_path: Path) -> None:
    write_agnews_csv(tmp_path / "train.csv", ROWS)
    write_agnews_csv(tmp_path / "test.csv", ROWS[:1])
    loaded = load_agnews(tmp_path)
    assert loaded["train"][0] == [f"{title} {description}" for _, title, description in ROWS]
    assert loaded["train"][1].tolist() == [2, 3, 0, 1]
    assert loaded["test"][1].tolist() == [2]
    assert AGNEWS_CLASSES[loaded["test"][1][0]] == "Business"


def test_missing_file_says_where_to_get_ag_news(tmp_path: Path) -> None:
    write_agnews_csv(tmp_path / "train.csv", ROWS)
    expected = r"test.csv not found: .*github.com/mhjabreel/CharCnn_Keras/tree/master/data/ag_news_csv .*torchtext"
    with pytest.raises(FileNotFoundError, match=expected):
        load_agnews(tmp_path)


@pytest.mark.parametrize("bad_class", ["0", "5", "x", ""])
def test_class_outside_1_to_4_names_file_and_line(tmp_path: Path, bad_class: str) -> None:
    path = tmp_path / "train.csv"
    path.write_text(f'"1","ok","fine"\n"{bad_class}","bad","row"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"train.csv, line 2: class '{bad_class}' is not one of 1..4"):
        read_agnews_csv(path)


def test_wrong_field_count_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('"1","ok","fine"\n"2","ok","fine"\n"3","only two"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="train.csv, line 3: expected 3 fields, found 2"):
        read_agnews_csv(path)


def test_classes() -> None:
    assert list(AGNEWS_CLASSES) == ["World", "Sports", "Business", "Sci/Tech"]
