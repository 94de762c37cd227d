#!/usr/bin/env bash
# Create ./.bench-venv: pdeforge plus the peers it is compared with (pyamg,
# neuraloperator, jax + jax-cfd + exponax, PhysicsNeMo + warp; pins in
# benchmarks/requirements.txt).
# The peers live only here, never in pdeforge's own venv.
# Safe to rerun. torch is pinned to the CPU build first (see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .bench-venv/bin/python ]; then
    "$PYTHON" -m venv .bench-venv
fi
if ! .bench-venv/bin/python -c "import torch" 2>/dev/null; then
    .bench-venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
.bench-venv/bin/pip install --quiet --disable-pip-version-check -e . -r benchmarks/requirements.txt
echo "benchmark venv ready: $(pwd)/.bench-venv (run .bench-venv/bin/python benchmarks/<script>.py)" >&2
