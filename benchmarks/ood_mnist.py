"""OOD AUROC on MNIST: a short VAE run, then importance-weighted log p(x) of test digits vs noise, shuffled and flipped digits.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ood_mnist.py --epochs 5 --net mlp --out runs/bench_ood_mnist
Prints the figures and writes them to OUT/ood.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import ppmodels
from ppmodels.metrics import auroc
from ppmodels.infer import TrainConfig


def outliers(x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "uniform_noise": rng.random(x.shape).astype(np.float32),
        "shuffled_pixels": np.stack([xi.ravel()[rng.permutation(xi.size)].reshape(xi.shape) for xi in x]),
        "flipped_digits": x[:, :, ::-1].copy(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--net", default="mlp")
    parser.add_argument("--num", type=int, default=2000, help="test digits (and outliers of each kind) scored")
    parser.add_argument("--particles", type=int, default=20)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    parser.add_argument("--out", default="runs/bench_ood_mnist")
    args = parser.parse_args()
    start = time.perf_counter()
    options = {"net": args.net, "z_dim": 10, "hidden": [256] if args.net == "conv" else [256, 256]}
    _, summary = ppmodels.train("vae", "mnist", args.out, data_dir=args.data_dir, overwrite=True, progress=False, sample_every=0,
                                train_config=TrainConfig(epochs=args.epochs, batch_size=100, patience=None), model_options=options)
    x = ppmodels.load_dataset("mnist", data_dir=args.data_dir).split("test").x[: args.num].numpy()
    inlier = ppmodels.score_data(args.out, x, num_particles=args.particles, reference_size=1000)
    figures = {"epochs": args.epochs, "net": args.net, "test_elbo": summary["test_elbo"], "num_scored": len(x),
               "num_particles": args.particles, "median_test_percentile": float(np.median(inlier["log_px_percentile"]))}
    for name, other in outliers(x).items():
        scores = ppmodels.score_data(args.out, other, num_particles=args.particles, reference_size=1000)
        figures[f"auroc_mnist_vs_{name}"] = auroc(inlier["log_px"], scores["log_px"])
    figures["wall_time_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(figures, indent=2))
    Path(args.out, "ood.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
