#!/usr/bin/env bash
# The GPU check of docs/reliability.md: M2 on MNIST (100 labels) with --device cuda, and with --devices 2 over nccl,
# each stopped by SIGTERM after its first checkpoint and resumed, then compared with an uninterrupted run.
# Writes OUT/gpu_check.json (timings, exit codes, the largest weight difference resumed vs uninterrupted).
#
#   bash benchmarks/gpu_check.sh [MNIST_DIR] [OUT] [EPOCHS]
#
# Never run yet: no GPU machine was at hand when it was written (see docs/reliability.md, "GPUs").
set -u
DATA_DIR=${1:-../shared/data/mnist}
OUT=${2:-gpu_check_out}
EPOCHS=${3:-3}
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu DATA=digits EPOCHS=1 smoke-tests this script without a GPU
DATA=${DATA:-mnist}
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # deterministic cuBLAS, so that a resumed run can match bitwise
mkdir -p "$OUT"
rm -rf "$OUT"/straight_* "$OUT"/resumed_*
COMMON=(train m2 --data "$DATA" --data-dir "$DATA_DIR" --labels 100 --epochs "$EPOCHS" --device "$DEVICE" --quiet --sample-every 0
        --checkpoint-every-steps 100)
RESULTS="$OUT/results.txt"
: > "$RESULTS"

now() { date +%s.%N; }

run_case() {  # NAME EXTRA_ARGS...: a straight run, then one stopped by SIGTERM after its first checkpoint and resumed
  local name=$1; shift
  local start end code
  start=$(now)
  $PY -m ppmodels_cli.main "${COMMON[@]}" "$@" --out "$OUT/straight_$name" > "$OUT/straight_$name.log" 2>&1
  code=$?
  end=$(now)
  echo "$name straight_exit $code" >> "$RESULTS"
  echo "$name straight_seconds $(awk "BEGIN {print $end - $start}")" >> "$RESULTS"

  $PY -m ppmodels_cli.main "${COMMON[@]}" "$@" --out "$OUT/resumed_$name" > "$OUT/resumed_$name.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null && [ ! -f "$OUT/resumed_$name/checkpoints/last.pt" ]; do sleep 0.5; done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  echo "$name sigterm_exit $?" >> "$RESULTS"
  start=$(now)
  $PY -m ppmodels_cli.main train m2 --out "$OUT/resumed_$name" --resume --quiet --device "$DEVICE" "$@" >> "$OUT/resumed_$name.log" 2>&1
  echo "$name resume_exit $?" >> "$RESULTS"
  end=$(now)
  echo "$name resume_seconds $(awk "BEGIN {print $end - $start}")" >> "$RESULTS"
}

$PY -c "import torch; print('cuda', torch.cuda.is_available(), torch.cuda.device_count(), torch.version.cuda)" > "$OUT/torch.txt"
run_case cuda
GPUS=$($PY -c "import torch; print(torch.cuda.device_count() if '$DEVICE' != 'cpu' else 2)")
if [ "$GPUS" -ge 2 ]; then
  run_case nccl2 --devices 2
else
  echo "nccl2 skipped_gpus $GPUS" >> "$RESULTS"
fi

$PY - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
report = {"torch": (out / "torch.txt").read_text().strip(), "cases": {}}
for line in (out / "results.txt").read_text().splitlines():
    name, key, value = line.split()
    report["cases"].setdefault(name, {})[key] = float(value) if "." in value else int(value)
for name, case in report["cases"].items():
    a, b = out / f"straight_{name}" / "model.safetensors", out / f"resumed_{name}" / "model.safetensors"
    if a.is_file() and b.is_file():
        from safetensors.torch import load_file
        x, y = load_file(a), load_file(b)
        case["max_abs_weight_difference"] = max(float((x[k] - y[k]).abs().max()) for k in x)
        case["bitwise_equal"] = all(bool((x[k] == y[k]).all()) for k in x)
        case["test_accuracy"] = json.loads((a.parent / "summary.json").read_text()).get("test_accuracy")
(out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
PY
