"""Epoch time and throughput of data-parallel training: M2 on MNIST with 1, 2, ... processes (``--devices N``).

Each process count runs the real command, ``ppmodels train m2 --data mnist --labels 100 ... --devices N`` (torchrun
under the hood for N > 1; gloo on CPU, nccl with ``--device cuda``), in a fresh run folder, at the same global batch.
From the run's ``metrics.jsonl`` it takes each epoch's time (the differences of the cumulative ``elapsed``, so
process start-up and data loading are left out; validation, sharded over the ranks, is in) and reports images per
second over the training split; the whole command's wall time is recorded too. The first epoch carries one-off
costs (DDP's set-up, the stage probe), so ``epoch_s`` is the median of the epochs after the first when there are
several. The load average before and after each run goes into the JSON: on a shared machine it says how much the
figures are worth.

Run (a few minutes on 2 cores; ``--max-per-class`` caps the training split, ``--epochs`` the passes)::

    .venv/bin/python benchmarks/scale.py --devices 1,2 --max-per-class 500 --epochs 2
    .venv/bin/python benchmarks/scale.py --devices 1,2,4,8 --device cuda --epochs 3 --max-per-class 0   # a GPU node
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ppmodels.files import write_json
from ppmodels.runs import versions

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="1,2", help="process counts to time, comma-separated")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (each process takes its own GPU)")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--data-dir", default=str(MNIST_DIR))
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--max-per-class", type=int, default=500, help="training images kept per class (0: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=200, help="the global batch (every process count uses it)")
    parser.add_argument("--hidden", default="500")
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one run may take")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    return parser.parse_args(argv)


def command(args: argparse.Namespace, devices: int, run_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "ppmodels", "train", "m2", "--data", args.data, "--data-dir", args.data_dir, "--labels", str(args.labels),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--hidden", args.hidden, "--z-dim", str(args.z_dim),
           "--patience", str(args.epochs), "--sample-every", "0", "--quiet", "--device", args.device, "--devices", str(devices),
           "--out", str(run_dir)]
    return cmd + (["--max-per-class", str(args.max_per_class)] if args.max_per_class else [])


def training_images(args: argparse.Namespace) -> int:
    from ppmodels.data import open_data

    return len(open_data(args.data, args.data_dir, False, args.labels, "none", args.max_per_class or None).train)


def time_run(args: argparse.Namespace, devices: int, images: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(command(args, devices, run_dir), capture_output=True, text=True, timeout=args.timeout,
                              env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"error: the {devices}-process run failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    elapsed = [0.0, *(r["elapsed"] for r in records)]
    epochs = [round(b - a, 3) for a, b in zip(elapsed, elapsed[1:])]
    epoch = statistics.median(epochs[1:] if len(epochs) > 1 else epochs)
    return {"processes": devices, "epoch_times_s": epochs, "epoch_s": round(epoch, 3), "images_per_s": round(images / epoch, 1),
            "steps_per_epoch": records[0]["step"], "wall_s": round(wall, 2), "train_elbo": [r["train_elbo"] for r in records],
            "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    images = training_images(args)
    runs = []
    for devices in (int(d) for d in args.devices.split(",")):
        row = time_run(args, devices, images)
        runs.append(row)
        print(f"{devices} process(es): {row['epoch_s']:.2f} s an epoch ({row['epoch_times_s']}), {row['images_per_s']:.0f} images/s, "
              f"command {row['wall_s']:.1f} s, load average {row['load_average_before']} -> {row['load_average_after']}", flush=True)
    base = runs[0]["epoch_s"]
    for row in runs:
        row["speedup"] = round(base / row["epoch_s"], 3)
    result = {"benchmark": "scale", "model": "m2", "data": args.data, "training_images": images, "global_batch": args.batch_size,
              "labels": args.labels, "hidden": args.hidden, "z_dim": args.z_dim, "epochs": args.epochs, "device": args.device,
              "machine": {"cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                          "versions": versions(), "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]},
              "runs": runs}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
