"""``lightning-dm8 checkpoints list|show|export|delete``: the model table from the command line.

Nothing stored runs: ``list``, ``show``, ``export`` and ``delete`` never unpickle a checkpoint, and ``show --hparams``
loads it with ``weights_only=True``; hyperparameters that hold other objects are shown by name
(:mod:`lightning_dm8.cli.hparams`), never rebuilt. ``delete RUN --all`` asks first (``--yes`` without a terminal).
"""

from __future__ import annotations

import argparse
import pickle
from typing import Any

from tqdm.auto import tqdm

from lightning_dm8.checkpoint.api import delete_checkpoints, export_checkpoint, list_checkpoints, load_checkpoint
from lightning_dm8.checkpoint.paths import format_ckpt_path, parse_selector
from lightning_dm8.checkpoint.records import CheckpointInfo
from lightning_dm8.checkpoint.schema import DEFAULT_TABLE
from lightning_dm8.checkpoint.store import CheckpointStore
from lightning_dm8.cli.common import confirm, database, yes_option
from lightning_dm8.cli.errors import EXIT_FAILED, EXIT_OK, UsageError
from lightning_dm8.cli.hparams import read_hyperparameters
from lightning_dm8.cli.output import format_size, format_table, printable
from lightning_dm8.db.engine import Database
from lightning_dm8.importers.pipeline import refreshing

_COLUMNS = ("run", "version", "name", "kind", "epoch", "step", "monitor", "value", "size", "created (UTC)", "sha256")


def add_commands(commands: Any, url_options: argparse.ArgumentParser) -> None:
    """Register ``checkpoints list|show|export|delete`` on ``commands`` (from ``add_subparsers``)."""
    common = argparse.ArgumentParser(add_help=False, parents=[url_options])
    common.add_argument("--table", default=DEFAULT_TABLE, help=f"model table (default: {DEFAULT_TABLE})")
    parser = commands.add_parser("checkpoints", help="list, show, export or delete checkpoints kept in the database",
                                 description="Checkpoints kept in a model table. Nothing stored is run: only "
                                 "show --hparams unpickles, with weights_only=True.")
    sub = parser.add_subparsers(dest="checkpoints_command", metavar="{list,show,export,delete}", required=True)

    listing = sub.add_parser("list", parents=[common], help="one line per checkpoint")
    listing.add_argument("run", nargs="?", help="only this run")
    listing.add_argument("--all", action="store_true", help="include unfinished saves")
    listing.set_defaults(checkpoint_handler=_list)

    show = sub.add_parser("show", parents=[common], help="one checkpoint's header (and hyperparameters)")
    show.add_argument("run", help="the run")
    show.add_argument("version", nargs="?", default="latest", help="number, best, latest or name (default: latest)")
    show.add_argument("--hparams", action="store_true",
                      help="also print its hyperparameters (read as data: objects are shown by name, never loaded)")
    show.set_defaults(checkpoint_handler=_show)

    export = sub.add_parser("export", parents=[common], help="write a checkpoint to a .ckpt file")
    export.add_argument("run", help="the run")
    export.add_argument("version", help="number, best, latest or name")
    export.add_argument("path", help="the .ckpt file to write")
    export.set_defaults(checkpoint_handler=_export)

    delete = sub.add_parser("delete", parents=[common, yes_option()], help="delete checkpoints of a run",
                            description="Delete the named versions of a run, its unfinished saves (--incomplete) "
                            "or all of it (--all, which asks first; without a terminal it needs --yes).")
    delete.add_argument("run", help="the run")
    delete.add_argument("versions", nargs="*", help="numbers, best, latest or names")
    delete.add_argument("--all", action="store_true", help="every checkpoint of the run (asks first)")
    delete.add_argument("--incomplete", action="store_true", help="only unfinished saves of the run")
    delete.set_defaults(checkpoint_handler=_delete)
    parser.set_defaults(handler=run_checkpoint_command)


def run_checkpoint_command(args: argparse.Namespace) -> int:
    """Run a parsed ``checkpoints`` command; errors propagate to the command line's one policy."""
    return int(args.checkpoint_handler(args, database(args)))


def _list(args: argparse.Namespace, db: Database) -> int:
    infos = list_checkpoints(db, args.run, table=args.table, include_incomplete=args.all)
    rows = [_row(c) for c in infos]
    columns = _COLUMNS + (("status",) if args.all else ())
    if args.all:
        rows = [r + ("complete" if c.complete else "unfinished",) for r, c in zip(rows, infos, strict=True)]
    print(format_table(columns, rows))
    if not rows:
        print("(no checkpoints)")
    return EXIT_OK


def _show(args: argparse.Namespace, db: Database) -> int:
    store = CheckpointStore(db, args.table)
    info = store.resolve(args.run, parse_selector(args.version))
    fields = info.as_dict()
    fields["ckpt_path"] = format_ckpt_path(info.run, info.version)
    fields["table"] = args.table
    fields["database"] = db.url
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        print(f"{key:<{width}}  {'' if value is None else printable(value)}".rstrip())
    if args.hparams:
        _print_hparams(db, store, info, args.table)
    return EXIT_OK


def _print_hparams(db: Database, store: CheckpointStore, info: CheckpointInfo, table: str) -> None:
    refs: list[str] = []
    try:
        checkpoint = load_checkpoint(db, info.run, info.version, table=table, weights_only=True)
        hparams = checkpoint.get("hyper_parameters") or {}
    except pickle.UnpicklingError:  # an object torch does not rebuild as data: read the names, run nothing
        hparams, refs = read_hyperparameters(store.read(info))
    print("hyper_parameters:")
    for key in sorted(hparams, key=str):
        print(f"  {printable(key)}: {printable(repr(hparams[key]))}")
    if refs:
        print(f"note: {len(refs)} object(s) in the hyperparameters are stored as code references "
              f"({printable(', '.join(refs))}); they are shown by name and were not loaded, so nothing stored ran")


def _export(args: argparse.Namespace, db: Database) -> int:
    selector = parse_selector(args.version)
    size = CheckpointStore(db, args.table).resolve(args.run, selector).size_bytes
    # A bar on a terminal (the read reports no progress of its own: its elapsed time moves, and it fills when done).
    with tqdm(total=size, desc=f"exporting {printable(args.run)} {printable(args.version)}", unit="B",
              unit_scale=True, disable=None) as bar, refreshing(bar):
        info = export_checkpoint(db, args.run, selector, args.path, table=args.table)
        bar.update(size)
    what = f"{format_size(info.size_bytes)}, sha256 {info.sha256}"
    print(f"wrote {printable(args.path)} ({what}): run {printable(repr(info.run))} version {info.version}")
    return EXIT_OK


def _delete(args: argparse.Namespace, db: Database) -> int:
    if args.incomplete:
        count = delete_checkpoints(db, args.run, table=args.table, incomplete=True)
    elif args.versions and not args.all:
        count = delete_checkpoints(db, args.run, [parse_selector(v) for v in args.versions], table=args.table)
    elif args.all and not args.versions:
        if not confirm(f"Delete every checkpoint of run {args.run!r} in {args.table!r} of {db.url}", yes=args.yes):
            print("nothing deleted")
            return EXIT_FAILED
        count = delete_checkpoints(db, args.run, None, table=args.table)
    else:
        raise UsageError("name the versions to delete, or pass --all (every checkpoint of the run) or --incomplete")
    print(f"deleted {count} checkpoint(s) of run {printable(repr(args.run))}")
    return EXIT_OK


def _row(c: CheckpointInfo) -> tuple[str, ...]:
    value = "" if c.monitor_value is None else f"{c.monitor_value:.6g}"
    return (
        c.run, str(c.version), c.name or "", c.kind, _text(c.epoch), _text(c.global_step), c.monitor or "", value,
        format_size(c.size_bytes), c.created_at.isoformat(sep=" ", timespec="seconds"), c.sha256[:12],
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)
