"""Subcommands of ``lightning-dm8`` besides Lightning's own (fit/validate/test/predict)."""
