"""``lightning-dm8``: LightningCLI (fit/validate/test/predict) and every table command, under one error policy.

Modules: ``app`` (the entry point and the one parser), ``lightning`` (LightningCLI, configs saved with passwords
masked), ``datasets`` (import, ls, info, drop), ``checkpoints`` (checkpoints list|show|export|delete), ``hparams``
(hyperparameters shown without running stored code), ``common`` (``--url``, confirmations), ``errors`` (exit
status), ``output`` (terminal-safe text and tables).
"""

from lightning_dm8.cli.app import main
from lightning_dm8.cli.lightning import MaskedSaveConfigCallback, lightning_cli, mask_config

__all__ = ["MaskedSaveConfigCallback", "lightning_cli", "main", "mask_config"]
