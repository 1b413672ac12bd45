"""Puts the repository root on ``sys.path``, so the harness test can import the top-level ``benchmarks`` package
(it is not installed with the library). pytest loads this file before it imports the test module.

This folder has no __init__.py on purpose: as a package it would be named ``benchmarks`` too and hide the harness.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
