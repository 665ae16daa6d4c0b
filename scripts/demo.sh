#!/usr/bin/env bash
# Set up, then train M1 (VAE features + label spreading over them) on scikit-learn's digits with 50 labels, and
# evaluate it beside the baselines on the raw pixels with the same 50 labels: an untuned SVC, and an SVC, logistic
# regression and label spreading tuned by stratified cross-validation (ppmodels/analysis/baselines.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ppmodels train m1 --data digits --labels 50 --out runs/m1-digits --overwrite "$@"
exec .venv/bin/ppmodels evaluate runs/m1-digits --iw-samples 0
