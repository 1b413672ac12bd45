"""Predictions in the database: :class:`DM8PredictionWriter` writes ``trainer.predict`` outputs into a table.

Modules: ``schema`` (the predictions table), ``rows`` (predict_step outputs and row ids to table rows, no
database), ``writer`` (the callback: staged table, bulk inserts, publish at the end).
"""

from lightning_dm8.predictions.schema import prediction_table
from lightning_dm8.predictions.writer import DM8PredictionWriter

__all__ = ["DM8PredictionWriter", "prediction_table"]
