"""The command line's one error and exit-status policy.

Exit status:

* ``0`` done;
* ``1`` failed: the database or what it holds cannot be used as asked (unreachable, wrong password, table or
  checkpoint not found, corrupt), or a confirmation was answered no;
* ``2`` misuse: what was typed cannot work (unknown option, bad value, a name that is not a dataset, files named on
  the command line that are missing or malformed, a destructive command without ``--yes`` and no terminal to ask).

Every error is reported as one line on stderr, ``error: <message>``: URLs and ``password=`` values masked, control
characters escaped, no traceback. Lightning's own commands (fit, validate, ...) report the project's errors the same
way; other exceptions raised there (in a model's code, say) keep their traceback.
"""

from __future__ import annotations

import sys
from typing import TextIO

import sqlalchemy as sa

from lightning_dm8.checkpoint.errors import InvalidCheckpointPathError
from lightning_dm8.cli.output import one_line
from lightning_dm8.errors import InvalidInputError, LightningDM8Error

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MISUSE = 2


class UsageError(LightningDM8Error):
    """The command line asks for something that cannot work as typed (exit status 2)."""


REPORTED: tuple[type[BaseException], ...] = (LightningDM8Error, ValueError, OSError, ImportError, sa.exc.ArgumentError)
"""What the table commands report as one line; anything else is a bug and keeps its traceback."""

_MISUSE = (UsageError, InvalidInputError, InvalidCheckpointPathError)
_MISUSE_OTHER = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, sa.exc.ArgumentError)


def exit_status(exc: BaseException) -> int:
    """The exit status for ``exc`` under the policy above."""
    if isinstance(exc, _MISUSE):
        return EXIT_MISUSE
    if isinstance(exc, LightningDM8Error):  # before ValueError/FileNotFoundError: some of the project's are both
        return EXIT_FAILED
    return EXIT_MISUSE if isinstance(exc, _MISUSE_OTHER) else EXIT_FAILED


def report(exc: BaseException, stream: TextIO | None = None) -> int:
    """Print ``exc`` as one ``error:`` line and return its exit status."""
    print(f"error: {one_line(str(exc)) or type(exc).__name__}", file=stream or sys.stderr)
    return exit_status(exc)
