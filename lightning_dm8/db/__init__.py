"""The database layer: the only code that knows drivers, dialects and SQL."""
