#!/usr/bin/env bash
# Create .venv (once) and install ppmodels into it. Torch goes in first so that pip takes the CPU build
# (torch==2.13.* lies on this machine's disk) instead of resolving a multi-GB CUDA build.
# Override with TORCH_SPEC, e.g. TORCH_SPEC="torch==2.5.*" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.*}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "$TORCH_SPEC"
fi
.venv/bin/python -m pip install -q -e ".[test]"
