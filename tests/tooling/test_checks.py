"""The checks CI runs besides the tests, and the rules they cannot express themselves."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lightning_dm8"


def test_ci_runs_the_static_checks_before_the_readme_test_command() -> None:
    steps = [
        line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    checks = [".venv/bin/ruff check .", ".venv/bin/mypy lightning_dm8", ".venv/bin/lint-imports"]
    tests = next(i for i, step in enumerate(steps) if step.startswith("bash scripts/test.sh"))
    assert steps[0] == "set -euo pipefail"  # the first failing check stops the run
    for check in checks:
        assert check in steps and steps.index(check) < tests, f"{check!r} must run before the tests"


def test_every_type_ignore_names_its_code_and_says_why() -> None:
    """mypy checks the code (``ignore-without-code``); the reason is a comment after it."""
    bare = re.compile(r"#\s*type:\s*ignore(?!\[[^\]]+\]\s*#\s*\S)")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if bare.search(line)
    ]
    assert not found, "a `# type: ignore[code]` needs a trailing `# why` comment:\n" + "\n".join(found)


def test_a_warning_from_the_package_fails_the_test_that_raised_it() -> None:
    """``filterwarnings = error:::lightning_dm8`` (setup.cfg): the package's own warnings are errors in the suite,
    other libraries' warnings are not."""
    with pytest.raises(UserWarning, match="from the package"):
        warnings.warn_explicit("from the package", UserWarning, "datamodule.py", 1, module="lightning_dm8.datamodule")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warnings.warn_explicit("from elsewhere", UserWarning, "other.py", 1, module="somewhere_else")
    assert [str(w.message) for w in caught] == ["from elsewhere"]
