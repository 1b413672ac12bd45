"""The demo (examples/fashion_mnist/demo.py, what scripts/demo.sh runs) on a small slice, as a user runs it: it
imports, trains, restores the best checkpoint from the database, tests and writes predictions, and prints no
warning of Lightning's (nor of this project's) along the way."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# How a warning prints: "path/to/module.py:123: message" (Lightning's format) or "...: SomeWarning: message".
WARNING_LINE = re.compile(r"^\S+\.py:\d+: ")
UPSTREAM = (
    # Lightning 2.6.6 builds a torch LeafSpec in its CombinedLoader, which torch 2.13 deprecates: inside Lightning,
    # on every run of any data, not something a data module can change.
    "lightning/pytorch/utilities/_pytree.py",
)
NAMED_IN_THE_ISSUE = ("args parameter is intended to run from within Python", "has `__len__` defined",
                      "Couldn't infer the batch indices", "callbacks used to create the checkpoint")


@pytest.mark.slow
def test_the_demo_runs_without_warnings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples/fashion_mnist/demo.py"), "--workdir", str(tmp_path), "--epochs", "1",
         "--limit", "600"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert re.search(r"(fashion-mnist|digits): test accuracy 0\.\d+", output)
    assert "predictions: 600 rows in demo_predictions" in output
    warnings = [line for line in output.splitlines()
                if WARNING_LINE.match(line) and not any(source in line for source in UPSTREAM)]
    assert warnings == []
    assert not [text for text in NAMED_IN_THE_ISSUE if text in output]
