"""Lightning's ``fit``/``validate``/``test``/``predict`` from YAML, with ``data`` a :class:`DM8DataModule`.

``model`` is any LightningModule named by ``class_path``. Its module must be importable: installed, or in a folder
named by ``--import-path DIR`` or ``$LIGHTNING_DM8_IMPORT_PATH`` (the current directory is not searched unless
named, so a file that happens to sit there cannot shadow an installed module). Every config printed
(``--print_config``) or saved beside a run has its URLs' passwords masked.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from typing_extensions import override

from lightning_dm8.checkpoint.secrets import environment_secrets, mask_secrets
from lightning_dm8.datamodule import DM8DataModule

COMMANDS = {
    "fit": "train a model (Lightning's fit; data from a DM8DataModule)",
    "validate": "run one validation epoch (Lightning's validate)",
    "test": "run one test epoch (Lightning's test)",
    "predict": "run predictions (Lightning's predict; write them with DM8PredictionWriter)",
}
"""Lightning's own subcommands and their one-line help."""


def mask_config(value: Any) -> Any:
    """A config (jsonargparse Namespace, dict, list, text) with every URL's password and the environment's password
    masked; the original is left untouched (parts are copied only where something changed)."""
    return mask_secrets(value, environment_secrets())


class MaskedSaveConfigCallback(SaveConfigCallback):
    """Saves the run's config like Lightning does, but never a database password."""

    def __init__(self, parser: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(parser, mask_config(config), *args, **kwargs)


class MaskingArgumentParser(LightningArgumentParser):
    """Lightning's parser, but every config it prints (``--print_config``) or saves has URL passwords masked."""

    @override
    def dump(self, cfg: Any, *args: Any, **kwargs: Any) -> str:
        return str(super().dump(mask_config(cfg), *args, **kwargs))


def lightning_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """The LightningCLI with DM8DataModule as ``data`` and any LightningModule as ``model``."""
    return LightningCLI(
        model_class=None,
        datamodule_class=DM8DataModule,
        subclass_mode_model=True,
        save_config_callback=MaskedSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_class=MaskingArgumentParser,
        parser_kwargs={"description": "Train from database tables. All commands: lightning-dm8 --help"},
        args=args,
        run=run,
    )
