"""``lightning-dm8``: Lightning's fit/validate/test/predict from YAML, plus data and checkpoint commands.

``lightning-dm8 fit --config config.yaml`` runs a LightningCLI whose ``data`` is a :class:`DM8DataModule`
and whose ``model`` is any LightningModule named by ``class_path`` (the current directory is importable, so
a project's own modules work). ``import``, ``ls``, ``info``, ``drop`` and ``checkpoints`` manage tables.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from lightning_dm8.datamodule import DM8DataModule
from lightning_dm8.db.urls import mask_url

TABLE_COMMANDS = ("import", "ls", "info", "drop", "checkpoints")


def _mask_secrets(value: Any) -> Any:
    """A copy of a parsed config in which every URL's password is masked."""
    if isinstance(value, str) and "://" in value and "@" in value:
        try:
            return mask_url(value)
        except Exception:  # not a URL after all
            return value
    if isinstance(value, dict):
        return {k: _mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(v) for v in value]
    if hasattr(value, "__dict__") and type(value).__name__ == "Namespace":
        masked = copy.copy(value)
        for key, item in vars(value).items():
            setattr(masked, key, _mask_secrets(item))
        return masked
    return value


class MaskedSaveConfigCallback(SaveConfigCallback):
    """Saves the run's config like Lightning does, but never a database password."""

    def __init__(self, parser: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(parser, _mask_secrets(config.clone() if hasattr(config, "clone") else config), *args,
                         **kwargs)


class MaskingArgumentParser(LightningArgumentParser):
    """Lightning's parser, but every config it prints (``--print_config``) or saves has URL passwords masked."""

    def dump(self, cfg: Any, *args: Any, **kwargs: Any) -> str:
        return super().dump(_mask_secrets(cfg.clone() if hasattr(cfg, "clone") else cfg), *args, **kwargs)


def lightning_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """The LightningCLI with DM8DataModule as ``data`` and any LightningModule as ``model``."""
    return LightningCLI(
        model_class=None,
        datamodule_class=DM8DataModule,
        subclass_mode_model=True,
        save_config_callback=MaskedSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_class=MaskingArgumentParser,
        parser_kwargs={"description": "Train from database tables. Table commands: "
                       "lightning-dm8 {import,ls,info,drop,checkpoints} --help"},
        args=args,
        run=run,
    )


def _table_parser() -> argparse.ArgumentParser:
    from lightning_dm8.commands.data import add_data_commands

    parser = argparse.ArgumentParser(prog="lightning-dm8", description="Manage dataset and checkpoint tables.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_data_commands(subparsers)
    try:
        from lightning_dm8.checkpoint.commands import add_checkpoint_commands
    except ImportError:
        pass
    else:
        add_checkpoint_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TABLE_COMMANDS:
        from lightning_dm8.errors import LightningDM8Error

        args = _table_parser().parse_args(argv)
        try:
            if args.command == "checkpoints":
                from lightning_dm8.checkpoint.commands import run_checkpoint_command

                return run_checkpoint_command(args)
            from lightning_dm8.commands.data import run_data_command

            return run_data_command(args)
        except (LightningDM8Error, ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    lightning_cli(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
