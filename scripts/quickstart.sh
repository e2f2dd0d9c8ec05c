#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a result: install what is missing, build (with the CUDA
# layer when nvcc is on PATH), install the Python package into .venv, and run the main job on its built-in
# default. Extra arguments go to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default
cmake --build --preset default
# The Python package into .venv, as `pip install .` builds it for anyone (scikit-build-core, CPU only).
.venv/bin/pip install --quiet --disable-pip-version-check .
echo
echo "== mnnvl-ar compare: ONESHOT vs TWOSHOT vs every profile on the built-in adversarial case =="
exec build/harness/mnnvl-ar compare "$@"
