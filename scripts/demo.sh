#!/usr/bin/env bash
# Set up, then train M1 (VAE features + SVM) on scikit-learn's digits with 50 labels and print its test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ppmodels train m1 --data digits --labels 50 --out runs/m1-digits --overwrite "$@"
