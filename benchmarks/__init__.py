"""Benchmarks: the project's loader side by side with what users would use instead.

``python -m benchmarks.run --out benchmarks/results`` measures everything in one run and writes JSON, Markdown and
PNG plots; see ``benchmarks/README.md``.
"""
