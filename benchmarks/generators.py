"""Generators side by side at equal wall time: VAE, GMVAE, M2 (class-conditional, every label) and the GAN.

Each (model, seed) trains in a process of its own (so its peak memory is its own), on one thread, with the shared
trainer, stopped at the end of the first epoch past ``--seconds`` of training, counted in the process's CPU time
(``--clock cpu``, the default: on a machine shared with others' jobs wall time would give each model what the others
left it; ``--clock wall`` on a machine of one's own) (the trainer's selection then applies: the best
validation ELBO for the VAEs, the best validation accuracy for M2, the last epoch for the GAN). Then the yardstick
of :mod:`ppmodels.analysis.sample_quality` scores as many samples as the test split has (Frechet distance,
precision, recall with k = 3, classes under a tenth of their share), and the importance-weighted bound on log p(x)
(``--iw-samples`` per datum) where the model has one: "not available" for the GAN, which has no likelihood. Wall
time and peak resident memory are the process's. Results go to ``benchmarks/results/generators_<data>.json``.

Run (digits, 30 s of CPU per model and seed; MNIST runs of 30 minutes are for a machine of one's own)::

    .venv/bin/python benchmarks/generators.py --data digits --seconds 30 --seeds 0,1,2
    .venv/bin/python benchmarks/generators.py --data mnist --seconds 1800 --seeds 0   # --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
MODELS = ("vae", "gmvae", "m2", "gan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--data-dir", default=str(MNIST_DIR))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--seconds", type=float, default=30.0, help="training time of every model (checked at the end of each epoch)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="what --seconds counts: the process's CPU time (one thread) or wall time")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="TrainConfig.precision of every model's training steps "
                        "(bf16: the networks' products in bfloat16, faster on CPUs with AVX512-BF16 or AMX; scoring stays float32)")
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--curve-every", type=int, default=0, help="record the Frechet distance of 1000 samples against the "
                        "validation split every this many epochs (each run's 'curve'; its time counts in the budget); 0: none")
    parser.add_argument("--split-check", action="store_true", help="also score the trained weights with 1000 and with 10,000 "
                        "samples (3 sample seeds) against the validation and the test split, and the two real splits against each "
                        "other (each run's 'split_check'): how the per-epoch curve's figures relate to the final one")
    parser.add_argument("--set-json", default="{}", help='model options by model, e.g. {"gan": {"z_dim": 32}} (default: each model\'s defaults)')
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SEED"), help=argparse.SUPPRESS)  # the child process's job
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/generators_<data>.json)")
    return parser.parse_args(argv)


class TimeBudget:
    """Ends training at the end of the first epoch past ``seconds`` of training (the trainer stops as early stopping
    would): the process's CPU time (``clock="cpu"``; one thread, so on an idle machine it is the wall time, and on a
    shared one other people's work does not eat into a model's budget) or the wall time (``clock="wall"``)."""

    def __init__(self, seconds: float, clock: str = "cpu"):
        self.seconds, self.clock = seconds, clock

    def on_train_start(self, trainer) -> None:
        self.start = time.process_time()

    def on_epoch_end(self, trainer, record: dict) -> None:
        used = time.process_time() - self.start if self.clock == "cpu" else record["elapsed"]
        if used >= self.seconds:
            trainer.state.stopped_early = True


def run_one(args: argparse.Namespace, name: str, seed: int) -> dict:
    """Train ``name`` with ``seed`` for the time budget and score it (in this process)."""
    import numpy as np
    import pyro
    import torch

    import ppmodels
    from ppmodels.analysis.sample_quality import sample_quality
    from ppmodels.data import load_dataset, prepare_data
    from ppmodels.infer import TrainConfig, fit
    from ppmodels.runs import peak_memory_mb

    torch.set_num_threads(1)
    dataset = load_dataset(args.data, data_dir=args.data_dir)
    data = prepare_data(dataset, seed=seed)
    cls = ppmodels.get_model_class(name)
    pyro.set_rng_seed(seed)
    model = cls(cls.config_from_data(dataset, seed=seed, **json.loads(args.set_json).get(name, {})))
    start, cpu_start = time.perf_counter(), time.process_time()
    callbacks, curve = [TimeBudget(args.seconds, args.clock)], []
    if args.curve_every:
        from ppmodels.analysis.sample_quality import QualityLog

        class Curve:  # after QualityLog, which adds the distance to the epoch's record
            def on_epoch_end(self, trainer, record: dict) -> None:
                if "frechet_distance" in record:
                    curve.append({"epoch": record["epoch"], "elapsed_s": round(record["elapsed"], 1), "frechet_distance": record["frechet_distance"]})

        callbacks += [QualityLog(dataset, every=args.curve_every, seed=seed), Curve()]
    fit(model, data, TrainConfig(epochs=100_000, batch_size=args.batch_size, patience=None, seed=seed, precision=args.precision), callbacks=callbacks)
    train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    quality = sample_quality(model, dataset, "test", seed=seed)
    last_weights = None
    if name == "gan" and model.config.ema_decay > 0:  # the same run's last weights, side by side with their average
        average, model.generator_ema = model.generator_ema, model.generator
        try:
            last = sample_quality(model, dataset, "test", seed=seed)
        finally:
            model.generator_ema = average
        last_weights = {"frechet_distance": last["frechet_distance"], "precision": last["precision"], "recall": last["recall"],
                        "min_class_share": float(np.min(last["coverage"]["shares"])), "max_class_share": float(np.max(last["coverage"]["shares"]))}
    split_check = frechet_splits(model, dataset) if args.split_check else None
    test_x = dataset.split("test").x
    if model.has_elbo:
        pyro.set_rng_seed(seed)
        iw = float(model.iw_log_likelihood(test_x, num_particles=args.iw_samples).mean())
    else:
        iw = "not available"
    state = model.train_state_
    return {"model": name, "seed": seed, "epochs": state.epoch, "kept_epoch": state.best_epoch, "selected_by": state.selected_by,
            "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu_s, 1), "wall_s": round(time.perf_counter() - start, 1), "peak_memory_mb": round(peak_memory_mb(), 1),
            "frechet_distance": quality["frechet_distance"], "precision": quality["precision"], "recall": quality["recall"],
            "classes_below_tenth": quality["coverage"]["num_low_classes"], "class_shares": quality["coverage"]["shares"],
            "min_class_share": float(np.min(quality["coverage"]["shares"])), "max_class_share": float(np.max(quality["coverage"]["shares"])),
            "iw_log_px": iw, "iw_samples": args.iw_samples if model.has_elbo else None, "train_precision": args.precision, "num_samples": quality["num_samples"],
            "classifier_test_accuracy": quality["classifier_test_accuracy"], "last_weights": last_weights, "curve": curve, "split_check": split_check, "config": {k: v for k, v in vars(model.config).items() if k != "x_shape"}}


def frechet_splits(model, dataset, sizes=(1000, 10_000), sample_seeds=(0, 1, 2)) -> dict:
    """The Frechet distance of one set of weights as the per-epoch curve measures it (1000 samples against the
    validation split) and as the final figure does (10,000 against the test split), and the cells between, for
    ``sample_seeds``; and the two real splits against each other at each size (0 but for their difference and the
    estimate's small-sample bias)."""
    import numpy as np
    import torch

    from ppmodels.analysis.sample_quality import frechet_distance, yardstick

    stick = yardstick(dataset)
    cap = min(len(dataset.splits["valid"]), len(dataset.splits["test"]))
    sizes = [n for n in sizes if n <= cap] or [cap]  # digits: 180, the validation split's size
    real = {split: stick.features(np.asarray(dataset.split(split).x[:max(sizes)])) for split in ("valid", "test")}
    cells = []
    for seed in sample_seeds:
        fake = stick.features(np.asarray(model.sample(max(sizes), generator=torch.Generator().manual_seed(seed)), dtype=np.float32))
        for n in sizes:
            for split in ("valid", "test"):
                cells.append({"samples": n, "split": split, "sample_seed": seed, "frechet_distance": round(frechet_distance(real[split][:n], fake[:n]), 3)})
    return {"samples_against_split": cells,
            "valid_against_test": {str(n): round(frechet_distance(real["valid"][:n], real["test"][:n]), 3) for n in sizes}}


def summarize(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds of each model's figures (IW log p(x) stays "not available" for the GAN)."""
    import numpy as np

    out = {}
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == name]
        row = {"seeds": len(mine)}
        for key in ("frechet_distance", "precision", "recall", "classes_below_tenth", "min_class_share", "max_class_share", "iw_log_px", "epochs",
                    "train_s", "train_cpu_s", "wall_s", "peak_memory_mb"):
            values = [r[key] for r in mine]
            if all(isinstance(v, (int, float)) for v in values):
                row[key] = {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None}
            else:
                row[key] = "not available"
        if all(r.get("last_weights") for r in mine):  # the GAN's last weights beside their average (ema_decay)
            row["last_weights"] = {key: {"mean": round(float(np.mean([r["last_weights"][key] for r in mine])), 4),
                                         "sd": round(float(np.std([r["last_weights"][key] for r in mine], ddof=1)), 4) if len(mine) > 1 else None}
                                   for key in mine[0]["last_weights"]}
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args, args.one[0], int(args.one[1]))))
        return {}
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.models.split(","):
            cmd = [sys.executable, __file__, "--one", name, str(seed), "--data", args.data, "--data-dir", args.data_dir,
                   "--seconds", str(args.seconds), "--clock", args.clock, "--batch-size", str(args.batch_size), "--iw-samples", str(args.iw_samples), "--set-json", args.set_json,
                   "--precision", args.precision, "--curve-every", str(args.curve_every)] + (["--split-check"] if args.split_check else [])
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if done.returncode:
                raise SystemExit(f"{name} seed {seed} failed:\n{done.stderr[-3000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = runs[-1]
            print(f"{name:6s} seed {seed}: {r['epochs']:4d} epochs  FD {r['frechet_distance']:8.2f}  precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
                  f"low classes {r['classes_below_tenth']}  IW log p(x) {r['iw_log_px'] if isinstance(r['iw_log_px'], str) else round(r['iw_log_px'], 2)}  "
                  f"{r['wall_s']} s  {r['peak_memory_mb']} MB", flush=True)
    from ppmodels.files import write_json
    from ppmodels.runs import versions

    result = {"data": args.data, "seconds_per_model": args.seconds, "clock": args.clock, "batch_size": args.batch_size, "train_precision": args.precision, "summary": summarize(runs), "runs": runs, "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_average": os.getloadavg(), "versions": versions()}
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"generators_{args.data}.json")
    write_json(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
