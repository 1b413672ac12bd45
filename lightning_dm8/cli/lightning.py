"""Lightning's ``fit``/``validate``/``test``/``predict`` from YAML, with ``data`` a :class:`DM8DataModule`.

``model`` is any LightningModule named by ``class_path``. Its module must be importable: installed, or in a folder
named by ``--import-path DIR`` or ``$LIGHTNING_DM8_IMPORT_PATH`` (the current directory is not searched unless
named, so a file that happens to sit there cannot shadow an installed module). Every config printed
(``--print_config``) or saved beside a run has its URLs' passwords masked.

The database URL is given once, as ``data.url``: every callback in ``trainer.callbacks`` that takes a ``url``
(``DM8Checkpoint``, ``DM8PredictionWriter``) receives it, so YAML leaves ``url`` out of their ``init_args`` and a
``--data.url`` on the command line moves them all.
"""

from __future__ import annotations

import re
from importlib.metadata import version
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


_RELEASE = re.match(r"(\d+)\.(\d+)", version("jsonargparse"))
_HAS_SKIP_UNSET = _RELEASE is not None and (int(_RELEASE[1]), int(_RELEASE[2])) >= (4, 49)


def _current_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` in this jsonargparse's words: Lightning 2.6 still passes ``skip_none``, which jsonargparse 4.49
    renamed ``skip_unset`` (warning at every use of the old name)."""
    if _HAS_SKIP_UNSET and "skip_none" in kwargs:
        kwargs = dict(kwargs)
        kwargs["skip_unset"] = kwargs.pop("skip_none")
    return kwargs


class MaskingArgumentParser(LightningArgumentParser):
    """Lightning's parser, but every config it prints (``--print_config``) or saves has URL passwords masked."""

    @override
    def dump(self, cfg: Any, *args: Any, **kwargs: Any) -> str:
        return str(super().dump(mask_config(cfg), *args, **_current_options(kwargs)))

    @override
    def save(self, cfg: Any, *args: Any, **kwargs: Any) -> None:
        super().save(cfg, *args, **_current_options(kwargs))


class DM8LightningCLI(LightningCLI):
    """LightningCLI whose callbacks that take a ``url`` get ``data.url`` (the URL is written once)."""

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.url", "trainer.callbacks.init_args.url")


def lightning_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """The LightningCLI with DM8DataModule as ``data`` and any LightningModule as ``model``; ``args`` None reads
    the command line (``sys.argv``)."""
    return DM8LightningCLI(
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
