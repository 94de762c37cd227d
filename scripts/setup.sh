#!/usr/bin/env bash
# Create ./.venv with pdeforge and its test tools (pytest, ruff, pyright with its own
# Node.js from PyPI). Safe to rerun.
# torch is pinned to the CPU build first, so that resolving `torch>=2.3` never
# pulls a multi-GB CUDA build; on a CUDA machine install the CUDA wheel of
# your choice into the venv before running this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
echo "pdeforge is installed in $(pwd)/.venv (run .venv/bin/pdeforge --help)" >&2
