#!/usr/bin/env bash
# Install (if needed) and run the main job on the embedded default, SQLite: no server needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/fashion_mnist/demo.py "$@"
