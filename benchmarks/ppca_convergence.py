"""PPCA from a random start: EM (the default optimiser) against Adam, to the closed form (issue 33).

    OMP_NUM_THREADS=1 python -P benchmarks/ppca_convergence.py --out runs/bench_ppca

For synthetic 64-D data (10-D signal of falling scale 3 to 0.5, noise 0.5, 1500 rows, numpy seed 0) and digits, at
z_dim 2, 5 and 10, trains ``ppca`` from ``init=random`` with (a) the default EM, 100 epochs of minibatches of 100;
(b) Adam full-batch at lr 0.05 for 1000 epochs; (c) Adam with the trainer's defaults (minibatch 100, lr 0.001, 100
epochs). Prints and writes (``--json``, default ``benchmarks/results/ppca_convergence.json``) the largest principal
angle to the closed-form subspace of the training data, sigma^2 relative to the closed form, the log-likelihood gap and
the kept epoch; the seconds are wall time, contended on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ppmodels.commands.train import train
from ppmodels.files import write_json
from ppmodels.infer import TrainConfig
from ppmodels.runs import versions

RESULTS = Path(__file__).resolve().parent / "results"

RECIPES = {"em": ({"optimizer": "em"}, {}), "adam_full_batch": ({"optimizer": "adam"}, {"batch_size": 100_000, "lr": 0.05, "epochs": 1000}),
           "adam_default": ({"optimizer": "adam"}, {})}


def synthetic(path: Path) -> str:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 10)) * np.linspace(3, 0.5, 10)
    x = rng.normal(size=(1500, 10)) @ w.T + 0.5 * rng.normal(size=(1500, 64))
    np.savez(path, x=x.astype(np.float32))
    return f"npz:{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_ppca"), help="folder for the runs")
    parser.add_argument("--json", type=Path, default=RESULTS / "ppca_convergence.json", help="where the figures go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    specs = {"synthetic": synthetic(args.out / "synthetic.npz"), "digits": "digits"}
    rows = []
    for name, spec in specs.items():
        for z_dim in (2, 5, 10):
            for recipe, (options, train_options) in RECIPES.items():
                start = time.perf_counter()
                config = TrainConfig(**{"patience": None, **train_options})
                _, summary = train("ppca", spec, args.out / f"{name}_{z_dim}_{recipe}", model_options={"z_dim": z_dim, "init": "random", **options},
                                   train_config=config, overwrite=True, progress=False, sample_every=0)
                row = {"data": name, "z_dim": z_dim, "recipe": recipe, "angle_deg": summary["closed_form_angle_deg"],
                       "noise_variance_rel": summary["noise_variance"] / summary["closed_form_noise_variance"] - 1,
                       "log_likelihood_gap": summary["closed_form_log_likelihood_gap"], "best_epoch": summary["best_epoch"],
                       "seconds": round(time.perf_counter() - start, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"command": " ".join(["python -P", *sys.argv]), "rows": rows, "load_average": os.getloadavg(), "versions": versions()}
    write_json(args.json, result)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
