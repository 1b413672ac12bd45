"""``lightning-dm8 checkpoints list|show|export|delete``: the model table from the command line.

``add_checkpoint_commands`` registers the sub-commands on an argparse ``subparsers`` object and
``run_checkpoint_command`` runs the parsed arguments, returning the process exit code (0 done, 1 failed, 2 misuse).
URLs are printed masked; pass the password in ``LIGHTNING_DM8_PASSWORD`` rather than on the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from lightning_dm8.checkpoint.api import delete_checkpoints, export_checkpoint, list_checkpoints, load_checkpoint
from lightning_dm8.checkpoint.paths import format_ckpt_path, parse_selector
from lightning_dm8.checkpoint.records import CheckpointInfo
from lightning_dm8.checkpoint.schema import DEFAULT_TABLE
from lightning_dm8.checkpoint.store import CheckpointStore
from lightning_dm8.db.urls import PASSWORD_ENV
from lightning_dm8.errors import LightningDM8Error

_COLUMNS = ("run", "version", "name", "kind", "epoch", "step", "monitor", "value", "size", "created (UTC)", "sha256")


def add_checkpoint_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``checkpoints list|show|export|delete`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", required=True, help=f"database URL; the password goes in ${PASSWORD_ENV}")
    common.add_argument("--table", default=DEFAULT_TABLE, help=f"model table (default: {DEFAULT_TABLE})")
    parser = subparsers.add_parser("checkpoints", help="list, show, export or delete checkpoints kept in the database")
    commands = parser.add_subparsers(dest="checkpoints_command", metavar="{list,show,export,delete}")
    commands.required = True

    listing = commands.add_parser("list", parents=[common], help="one line per checkpoint")
    listing.add_argument("run", nargs="?", help="only this run")
    listing.add_argument("--all", action="store_true", help="include unfinished saves")

    show = commands.add_parser("show", parents=[common], help="one checkpoint's header (and hyperparameters)")
    show.add_argument("run")
    show.add_argument("version", nargs="?", default="latest", help="number, best, latest or name (default: latest)")
    show.add_argument("--hparams", action="store_true", help="also load it and print its hyperparameters")

    export = commands.add_parser("export", parents=[common], help="write a checkpoint to a .ckpt file")
    export.add_argument("run")
    export.add_argument("version", help="number, best, latest or name")
    export.add_argument("path", help="the .ckpt file to write")

    delete = commands.add_parser("delete", parents=[common], help="delete checkpoints of a run")
    delete.add_argument("run")
    delete.add_argument("versions", nargs="*", help="numbers, best, latest or names")
    delete.add_argument("--all", action="store_true", help="every checkpoint of the run")
    delete.add_argument("--incomplete", action="store_true", help="only unfinished saves of the run")
    return parser


def run_checkpoint_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run a parsed ``checkpoints`` command; errors are printed (URL masked), not raised."""
    out = out or sys.stdout
    err = err or sys.stderr
    handlers = {"list": _list, "show": _show, "export": _export, "delete": _delete}
    try:
        return handlers[args.checkpoints_command](args, out, err)
    except LightningDM8Error as exc:
        print(f"error: {exc}", file=err)
        return 1


def _list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    infos = list_checkpoints(args.url, args.run, table=args.table, include_incomplete=args.all)
    rows = [_row(c) for c in infos]
    columns = _COLUMNS + (("status",) if args.all else ())
    if args.all:
        rows = [r + ("complete" if c.complete else "unfinished",) for r, c in zip(rows, infos)]
    print(format_table(columns, rows), file=out)
    if not rows:
        print("(no checkpoints)", file=out)
    return 0


def _show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    store = CheckpointStore(args.url, args.table)
    info = store.resolve(args.run, parse_selector(args.version))
    fields = info.as_dict()
    fields["ckpt_path"] = format_ckpt_path(info.run, info.version)
    fields["table"] = args.table
    fields["database"] = store.db.url
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        print(f"{key:<{width}}  {'' if value is None else value}".rstrip(), file=out)
    if args.hparams:
        checkpoint = load_checkpoint(store.db, info.run, info.version, table=args.table, weights_only=False)
        hparams = checkpoint.get("hyper_parameters") or {}
        print("hyper_parameters:", file=out)
        for key in sorted(hparams):
            print(f"  {key}: {hparams[key]!r}", file=out)
    return 0


def _export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    info = export_checkpoint(args.url, args.run, parse_selector(args.version), args.path, table=args.table)
    what = f"{_size(info.size_bytes)}, sha256 {info.sha256}"
    print(f"wrote {args.path} ({what}): run {info.run!r} version {info.version}", file=out)
    return 0


def _delete(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.incomplete:
        count = delete_checkpoints(args.url, args.run, table=args.table, incomplete=True)
    elif args.all or args.versions:
        versions = None if args.all else [parse_selector(v) for v in args.versions]
        count = delete_checkpoints(args.url, args.run, versions, table=args.table)
    else:
        print("error: name the versions to delete, or pass --all or --incomplete", file=err)
        return 2
    print(f"deleted {count} checkpoint(s) of run {args.run!r}", file=out)
    return 0


def _row(c: CheckpointInfo) -> tuple[str, ...]:
    value = "" if c.monitor_value is None else f"{c.monitor_value:.6g}"
    return (
        c.run, str(c.version), c.name or "", c.kind, _text(c.epoch), _text(c.global_step), c.monitor or "", value,
        _size(c.size_bytes), c.created_at.isoformat(sep=" ", timespec="seconds"), c.sha256[:12],
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
