"""``lightning-dm8``: the entry point, the one parser of the table commands, and the import path.

``fit``, ``validate``, ``test`` and ``predict`` go to Lightning's own CLI (:mod:`lightning_dm8.cli.lightning`);
``import``, ``ls``, ``info``, ``drop``, ``gc``, ``checkpoints`` and ``cache`` are parsed by :func:`build_parser` and run
here under the error policy of :mod:`lightning_dm8.cli.errors`.
"""

from __future__ import annotations

import argparse
import os
import sys

from typing_extensions import override

from lightning_dm8.cli import cache, checkpoints, datasets
from lightning_dm8.cli.common import close_database, url_options
from lightning_dm8.cli.errors import EXIT_MISUSE, EXIT_OK, REPORTED, UsageError, report
from lightning_dm8.cli.lightning import COMMANDS as LIGHTNING_COMMANDS
from lightning_dm8.cli.lightning import lightning_cli
from lightning_dm8.db.urls import PASSWORD_ENV, URL_ENV
from lightning_dm8.errors import LightningDM8Error

TABLE_COMMANDS = ("import", "ls", "info", "drop", "gc", "checkpoints", "cache")

IMPORT_PATH_ENV = "LIGHTNING_DM8_IMPORT_PATH"
"""Folders (separated by ``os.pathsep``) added to the import path, as ``--import-path`` does."""
IMPORT_PATH_OPTION = "--import-path"

EPILOG = f"""\
Each command has its own --help; fit, validate, test and predict take Lightning's options
(lightning-dm8 fit --help).

Model and callback classes are imported from installed packages only, unless
{IMPORT_PATH_OPTION} DIR (any number of times, anywhere on the line) or ${IMPORT_PATH_ENV} names
more folders: e.g. `lightning-dm8 fit {IMPORT_PATH_OPTION} . --config examples/fashion_mnist/config.yaml`.

Environment: ${URL_ENV} (the default --url), ${PASSWORD_ENV} (the password of a
URL that has none), ${IMPORT_PATH_ENV} (like {IMPORT_PATH_OPTION}). Set them rather than typing a
password on the command line, where `ps` shows it to every user of the machine.

Exit status: 0 done; 1 failed (the database or what it holds cannot be used: unreachable, not
found, corrupt; or a question was answered no); 2 misuse (bad arguments or input, a name that is
not a dataset, a destructive command without --yes and no terminal to ask). Errors are one line:
"error: ...".
"""


class Parser(argparse.ArgumentParser):
    """argparse with the command line's error policy: a mistake is one ``error:`` line and exit status 2."""

    @override
    def error(self, message: str) -> None:  # type: ignore[override]  # raises instead of exiting
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> Parser:
    """The one parser of ``lightning-dm8``: every command (Lightning's listed for ``--help``; they are parsed by
    LightningCLI), each table command with its options."""
    parser = Parser(prog="lightning-dm8", description="Train PyTorch Lightning models from database tables, and "
                    "manage those tables.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(IMPORT_PATH_OPTION, metavar="DIR", action="append",
                        help=f"also import model and callback classes from DIR (repeatable; also ${IMPORT_PATH_ENV})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)
    for name, text in LIGHTNING_COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)
    options = url_options()
    datasets.add_commands(commands, options)
    checkpoints.add_commands(commands, options)
    cache.add_commands(commands, options)
    return parser


def take_import_paths(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` without its ``--import-path DIR`` options, and the folders they and ``$LIGHTNING_DM8_IMPORT_PATH``
    name (options first). Options after a ``--`` are left alone."""
    folders: list[str] = []
    rest: list[str] = []
    position = 0
    while position < len(argv):
        item = argv[position]
        if item == "--":
            rest += argv[position:]
            break
        if item == IMPORT_PATH_OPTION:
            if position + 1 == len(argv):
                raise UsageError(f"{IMPORT_PATH_OPTION} needs a folder: {IMPORT_PATH_OPTION} DIR")
            folders.append(argv[position + 1])
            position += 2
            continue
        if item.startswith(IMPORT_PATH_OPTION + "="):
            folders.append(item.split("=", 1)[1])
        else:
            rest.append(item)
        position += 1
    folders += [p for p in os.environ.get(IMPORT_PATH_ENV, "").split(os.pathsep) if p]
    return rest, folders


def add_import_paths(folders: list[str]) -> None:
    """Put ``folders`` at the front of ``sys.path`` (in the order given); each must exist."""
    for folder in reversed(folders):
        path = os.path.abspath(os.path.expanduser(folder))
        if not os.path.isdir(path):
            raise UsageError(f"{IMPORT_PATH_OPTION} {folder!r}: not a folder")
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def check_config_files(argv: list[str]) -> None:
    """Each ``--config FILE`` of a Lightning command must exist (else one line, not Lightning's usage text)."""
    for position, item in enumerate(argv):
        if item == "--":
            return
        if item.startswith("--config="):
            path = item.split("=", 1)[1]
        elif item == "--config" and position + 1 < len(argv):
            path = argv[position + 1]
        else:
            continue
        if not os.path.isfile(os.path.expanduser(path)):
            raise UsageError(f"--config {path!r}: no such file")


def run_table_command(argv: list[str]) -> int:
    """Parse and run a table command: ``import``, ``ls``, ``info``, ``drop``, ``gc``, ``checkpoints``, ``cache``."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    try:
        return int(args.handler(args))
    finally:
        close_database(args)


def main(argv: list[str] | None = None) -> int:
    """Run ``lightning-dm8`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv, folders = take_import_paths(argv)
        add_import_paths(folders)
        if not argv or argv[0] in ("-h", "--help"):
            build_parser().print_help()
            return EXIT_OK if argv else EXIT_MISUSE
        if argv[0] in TABLE_COMMANDS:
            return run_table_command(argv)
        check_config_files(argv)
    except REPORTED as exc:
        return report(exc)
    if from_command_line:
        # LightningCLI reads the command line itself; DDP ranks it starts run this same line again, and find the
        # import path in the environment.
        sys.argv[1:] = argv
        if folders:
            os.environ[IMPORT_PATH_ENV] = os.pathsep.join(folders)
    try:
        lightning_cli(None if from_command_line else argv)
    except LightningDM8Error as exc:  # the project's errors are one line here too; a model's own keep their traceback
        return report(exc)
    return EXIT_OK
