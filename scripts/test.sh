#!/usr/bin/env bash
# Set up, then run the test suite (add --runslow for the longer checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MPLBACKEND=Agg exec .venv/bin/python -m pytest -q "$@"
