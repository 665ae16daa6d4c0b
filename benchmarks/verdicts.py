"""The verdict benchmark (issue 33): known-good and known-bad fits on digits, each diagnosed; the overall verdict
against the truth.

    OMP_NUM_THREADS=1 python -P benchmarks/verdicts.py --out runs/bench_verdicts

Prints one line per fit (truth, status, the codes of its problems) and writes them (``--json``, default
``benchmarks/results/verdicts.json``; the seconds are wall time, contended on a shared machine). Every bad fit must be
named bad for the right reason (``reason``: the codes that would be right), no good fit named bad. M2 without labels
is not among them: ``train m2 --labels 0`` is refused (the model learns its classes from labels).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ppmodels.commands.diagnose import diagnose
from ppmodels.commands.train import train
from ppmodels.data import load_dataset
from ppmodels.files import write_json
from ppmodels.infer import TrainConfig
from ppmodels.runs import versions

RESULTS = Path(__file__).resolve().parent / "results"

BASELINE = {"worse_than_independent", "explains_little"}
PPC = {"ppc_zero_share", "ppc_mean", "ppc_feature_mean", "ppc_feature_sd"}
VAE = {"z_dim": 5, "hidden": [64]}
#: name: (model, data, options, labels, epochs, truth, right reasons for a bad verdict)
FITS = {
    "vae_one_epoch": ("vae", "digits", VAE, None, 1, "bad", BASELINE | PPC),
    "vae_shuffled_pixels": ("vae", "shuffled", VAE, None, 60, "bad", BASELINE),
    "ppca_gaussian": ("ppca", "digits", {"z_dim": 5}, None, 100, "bad", PPC | BASELINE),
    "ppca_random_start_stopped_early": ("ppca", "digits", {"z_dim": 5, "optimizer": "adam"}, None, 3, "bad", BASELINE | PPC),
    "gmm_one_component": ("gmm", "digits", {"num_components": 1}, None, 30, "bad", BASELINE),
    "vae_good": ("vae", "digits", VAE, None, 60, "good", set()),
    "m2_good": ("m2", "digits", {"z_dim": 5, "hidden": [64]}, 200, 30, "good", set()),
    "gmm_good": ("gmm", "latents", {"num_components": 10}, None, 100, "good", set()),
}


def shuffled_digits(path: Path) -> str:
    """digits with each image's pixels permuted at random: no dependence between pixels is left to learn."""
    data = load_dataset("digits")
    x = np.asarray(data.x, dtype=np.float32).reshape(len(data.x), -1).copy()
    rng = np.random.default_rng(0)
    for row in x:
        rng.shuffle(row)
    np.savez(path, x=x, y=np.asarray(data.y))
    return f"npz:{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_verdicts"), help="folder for the runs")
    parser.add_argument("--json", type=Path, default=RESULTS / "verdicts.json", help="where the table goes")
    parser.add_argument("--num-data", type=int, default=200)
    parser.add_argument("--particles", type=int, default=200)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    specs = {"digits": "digits", "shuffled": shuffled_digits(args.out / "shuffled.npz"), "latents": f"latents:{args.out / 'vae_good'}"}
    rows = []
    for name, (model, data, options, labels, epochs, truth, reasons) in FITS.items():
        start = time.perf_counter()
        run = args.out / name
        train(model, specs[data], run, labels=labels, model_options=options, overwrite=True, progress=False, sample_every=0,
              train_config=TrainConfig(epochs=epochs, batch_size=64, patience=None, seed=0))
        overall = diagnose(run, num_data=args.num_data, particles=args.particles, report=False, overwrite=True)["overall"]
        bad = sorted(p["code"] for p in overall["problems"] if p["severity"] == "bad")
        right = overall["status"] != "bad" if truth == "good" else overall["status"] == "bad" and bool(set(bad) & reasons)
        rows.append({"fit": name, "truth": truth, "status": overall["status"], "bad_codes": bad,
                     "warning_codes": sorted(p["code"] for p in overall["problems"] if p["severity"] == "warning"),
                     "right": right, "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
    result = {"command": " ".join(["python -P", *sys.argv]), "num_data": args.num_data, "particles": args.particles,
              "all_right": all(r["right"] for r in rows), "rows": rows, "load_average": os.getloadavg(), "versions": versions()}
    write_json(args.json, result)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
