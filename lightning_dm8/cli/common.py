"""What the table commands share: the ``--url`` option, opening the database it names, and confirmations."""

from __future__ import annotations

import argparse
import os
import sys

from lightning_dm8.cli.errors import UsageError
from lightning_dm8.cli.output import printable
from lightning_dm8.datamodule import open_database
from lightning_dm8.db.engine import Database
from lightning_dm8.db.urls import PASSWORD_ENV, URL_ENV
from lightning_dm8.errors import TableNotFoundError

URL_HELP = (
    f"database URL, e.g. sqlite:///data.db or postgresql://user@host/db (default: ${URL_ENV}). Keep the password "
    f"off the command line, where `ps` shows it to every user of the machine: set ${PASSWORD_ENV}, or put the whole "
    f"URL in ${URL_ENV}"
)


def url_options() -> argparse.ArgumentParser:
    """The parent parser of every table command: ``--url``, defaulting to ``$LIGHTNING_DM8_URL``."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--url", help=URL_HELP)
    return options


def yes_option() -> argparse.ArgumentParser:
    """The parent parser of every destructive command: ``--yes``."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    return options


def given_url(args: argparse.Namespace) -> str | None:
    """The URL of ``--url``, else ``$LIGHTNING_DM8_URL``, else None."""
    return getattr(args, "url", None) or os.environ.get(URL_ENV) or None


def database(args: argparse.Namespace, *, must_exist: bool = True) -> Database:
    """The database of ``--url`` (or ``$LIGHTNING_DM8_URL``).

    ``must_exist``: a local database file that does not exist is an error rather than created empty (a command that
    only reads or deletes must not leave a stray file behind a typo). The command line closes its connections
    (:func:`close_database`) when the command ends.
    """
    opened: Database | None = getattr(args, "opened_database", None)
    if opened is not None:
        return opened
    url = given_url(args)
    if not url:
        raise UsageError(f"no database given: pass --url URL or set {URL_ENV} (which keeps a password off the "
                         f"command line)")
    db = open_database(url, "--url" if args.url else f"${URL_ENV}")
    if must_exist and not db.backend.exists_locally(db.sa_url):
        raise TableNotFoundError(f"there is no database at {db.url}: the file does not exist, so nothing has been "
                                 f"saved there yet")
    args.opened_database = db
    return db


def close_database(args: argparse.Namespace) -> None:
    """Close the connections of the database a command opened (if it opened one)."""
    opened: Database | None = getattr(args, "opened_database", None)
    if opened is not None:
        opened.dispose()


def confirm(question: str, *, yes: bool) -> bool:
    """Whether to go on with a destructive command: ``--yes`` says so; otherwise the terminal is asked.

    Without a terminal (a script, a pipe, CI) nobody can answer: raises :class:`UsageError` saying to pass
    ``--yes``, rather than waiting on, or failing to read, a closed input.
    """
    if yes:
        return True
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageError(f"{question}? There is no terminal to confirm it: pass --yes to go ahead")
    try:
        answer = input(f"{printable(question)}? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")
