"""``lightning-dm8 cache ls | warm | clear``: the local LMDB block caches.

A cache lives in ``<cache dir>/<table>-<digest>/`` (the digest names the database: backend, host, port, database,
user and table, never a password). ``ls`` needs no database; with ``--url`` (or ``$LIGHTNING_DM8_URL``) it names
the datasets of that database exactly. ``warm`` reads what a dataset's cache misses (whole blocks, prefetched) so
that training starts warm. ``clear`` removes one dataset's cache, or every cache (``--all``), after asking (without
a terminal it needs ``--yes``); it removes only directories that are caches of this project.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path
from typing import Any

from lightning_dm8.cli.common import confirm, database, given_url, yes_option
from lightning_dm8.cli.errors import EXIT_FAILED, EXIT_OK, UsageError
from lightning_dm8.cli.output import format_size, format_table, printable
from lightning_dm8.datamodule import DEFAULT_CACHE_DIR, DM8DataModule
from lightning_dm8.loading.cache import cache_path
from lightning_dm8.tables.registry import list_infos

_CACHE_NAME = re.compile(r"^(?P<table>.+?)-[0-9a-f]{16}(-[0-9a-f]{16})?$")
_DEFAULT_BLOCK_SIZE = 256


def add_commands(commands: Any, url_options: argparse.ArgumentParser) -> None:
    """Register ``cache ls|warm|clear`` on ``commands`` (from ``add_subparsers``)."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR,
                       help=f"the folder holding the caches, DM8DataModule's cache_dir (default: {DEFAULT_CACHE_DIR})")
    parser = commands.add_parser("cache", help="list, fill or clear the local block caches (LMDB)",
                                 description="The local block caches: one per dataset and database, filled by the "
                                 "first epoch (or by `cache warm`) and read by every later one.")
    sub = parser.add_subparsers(dest="cache_command", metavar="{ls,warm,clear}", required=True)

    listing = sub.add_parser("ls", parents=[where, url_options], help="one line per cache: dataset and size",
                             description="List the caches under --cache-dir with their size on disk. With --url (or "
                             "$LIGHTNING_DM8_URL) the datasets of that database are named exactly.")
    listing.set_defaults(cache_handler=_list)

    warm = sub.add_parser("warm", parents=[where, url_options], help="fill a dataset's cache from the database",
                          description="Read every block of a dataset that its cache does not hold yet (prefetched), "
                          "so that training starts from a complete cache.")
    warm.add_argument("name", help="the dataset")
    warm.add_argument("--block-size", type=int, default=_DEFAULT_BLOCK_SIZE,
                      help=f"rows per block: the block_size training uses (default {_DEFAULT_BLOCK_SIZE}; a cache "
                      f"holds one block size)")
    warm.set_defaults(cache_handler=_warm)

    clear = sub.add_parser("clear", parents=[where, url_options, yes_option()],
                           help="remove a dataset's cache, or every cache (--all)",
                           description="Remove the cache of one dataset of the database at --url, or every cache "
                           "under --cache-dir (--all). Asks first; without a terminal, needs --yes. The next epoch "
                           "reads from the database again.")
    clear.add_argument("name", nargs="?", help="the dataset (its database from --url or $LIGHTNING_DM8_URL)")
    clear.add_argument("--all", action="store_true", help="every cache under --cache-dir")
    clear.set_defaults(cache_handler=_clear)
    parser.set_defaults(handler=run_cache_command)


def run_cache_command(args: argparse.Namespace) -> int:
    """Run a parsed ``cache`` command; errors propagate to the command line's one policy."""
    return int(args.cache_handler(args))


def _caches(folder: Path) -> list[Path]:
    """The cache directories under ``folder`` (named ``<table>-<digest>``, holding LMDB's ``data.mdb``)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.is_symlink() and _CACHE_NAME.match(p.name) and (p / "data.mdb").is_file())


def _disk_bytes(path: Path) -> int:
    """Bytes the files of a cache directory take on disk (LMDB files can be sparse: blocks, not lengths)."""
    return sum(f.stat().st_blocks * 512 for f in path.iterdir() if f.is_file() and not f.is_symlink())


def _folder(args: argparse.Namespace) -> Path:
    return Path(os.path.expanduser(args.cache_dir))


def _list(args: argparse.Namespace) -> int:
    folder = _folder(args)
    named: dict[Path, tuple[str, int]] = {}
    if given_url(args):
        db = database(args)
        with db.connect("list dataset tables") as conn:
            named = {cache_path(folder, db, i.name): (i.name, i.row_count) for i in list_infos(conn)}
    rows = []
    for path in _caches(folder):
        match = _CACHE_NAME.match(path.name)
        name, count = named.get(path, (match.group("table") if match else path.name, None))
        row = (name, format_size(_disk_bytes(path)), str(path))
        rows.append(row if not named else (row[0], "" if count is None else count, *row[1:]))
    if not rows:
        print(f"(no caches in {printable(folder)})")
        return EXIT_OK
    print(format_table(("dataset", "rows", "size", "path") if named else ("dataset", "size", "path"), rows))
    if not named:
        print("(with --url, the datasets of that database are named exactly; a cache of another database shows its "
              "name as stored in the folder's name)")
    return EXIT_OK


def _warm(args: argparse.Namespace) -> int:
    if args.block_size < 1:
        raise UsageError(f"--block-size must be at least 1; got {args.block_size}")
    database(args)  # refuses a database file that does not exist (it would be created empty)
    url = given_url(args) or ""
    dm = DM8DataModule(url, train_table=args.name, cache_dir=args.cache_dir, block_size=args.block_size,
                       shuffle=False, progress=True)
    try:
        cost = dm.fill_cache(("train",))["train"]
        path = cache_path(_folder(args), dm.db, args.name)
        print(f"{printable(args.name)}: cache complete in {printable(path)} ({format_size(_disk_bytes(path))}); "
              f"{int(cost['queries'])} block(s), {int(cost['rows_from_db'])} row(s) read from the database")
    finally:
        dm.teardown("fit")
        dm.db.dispose()
    return EXIT_OK


def _clear(args: argparse.Namespace) -> int:
    folder = _folder(args)
    if args.all == bool(args.name):
        raise UsageError("name the dataset whose cache to remove, or pass --all (every cache under --cache-dir)")
    if args.all:
        doomed = _caches(folder)
        what = f"every cache in {folder} ({len(doomed)} of them, {format_size(sum(map(_disk_bytes, doomed)))})"
    else:
        path = cache_path(folder, database(args), args.name)
        # The dataset's cache and the caches of its column selections (named after it: see cache_path).
        doomed = [p for p in _caches(folder) if p == path or p.name.startswith(f"{path.name}-")]
        if not doomed:
            print(f"no cache of {printable(repr(args.name))} in {printable(folder)}")
            return EXIT_OK
        what = (f"the caches of {args.name!r} ({len(doomed)}: the dataset's and those of column selections, "
                f"{format_size(sum(map(_disk_bytes, doomed)))}) in {folder}")
    if not doomed:
        print(f"(no caches in {printable(folder)})")
        return EXIT_OK
    if not confirm(f"Remove {what}", yes=args.yes):
        print("nothing removed")
        return EXIT_FAILED
    for path in doomed:
        shutil.rmtree(path)
    print(f"removed {len(doomed)} cache(s) from {printable(folder)}")
    return EXIT_OK
