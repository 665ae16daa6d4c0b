"""Semi-supervised benchmark (Kingma et al. 2014, Table 1): M2 and M1+M2 against scikit-learn peers on the same splits.

Not a test: it prints a table and writes JSON to ``benchmarks/results/``. Every row is one (model, seed) on the
same labeled subset: dataset, model, number of labels, seed, test error %, balanced accuracy, epochs, wall time,
peak memory, and, for the deep models, a curve of valid/test error every ``--eval-every`` epochs.

    python benchmarks/semisupervised.py --dataset digits --labels 50 --seeds 0,1,2,3,4          # digits-50 with peers
    python benchmarks/semisupervised.py --dataset mnist --labels 100 --models m1m2 --budget-min 25  # time-boxed MNIST-100
    python benchmarks/semisupervised.py --quick                                                   # minutes: few epochs, one seed

Protocol: the data layer's fixed splits (digits: stratified 70/10/20; MNIST: 50k train / 10k valid / 10k test),
``--labels`` class-balanced labels drawn with the seed, the rest of the training split unlabeled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppmodels.analysis.baselines import BASELINES as PEERS, baseline_predictions  # noqa: E402
from ppmodels.analysis.metrics import classification_metrics  # noqa: E402
from ppmodels.data import TrainData, load_dataset, prepare_data  # noqa: E402
from ppmodels.files import write_json  # noqa: E402
from ppmodels.infer import TrainConfig, fit  # noqa: E402
from ppmodels.models import get_model_class  # noqa: E402
from ppmodels.runs import peak_memory_mb, versions  # noqa: E402

from benchmarks.imbalanced import imbalanced_digits  # noqa: E402

# Model options and training settings per (dataset, model); the MNIST ones follow the paper's sizes.
# digits: the defaults of `ppmodels train MODEL --data digits --labels 50` (model options and TrainConfig), so the
# benchmark measures what a user gets without flags; MNIST: the paper's sizes, time-boxed with --budget-min
PRESETS = {
    ("digits", "m1"): ({}, {}),
    ("digits", "m2"): ({}, {}),
    ("digits", "m1m2"): ({}, {}),
    ("digits", "adgm"): ({}, {}),
    ("digits90", "m1"): ({}, {}),
    ("digits90", "m2"): ({}, {}),
    ("digits90", "m1m2"): ({}, {}),
    ("mnist", "m1"): ({}, {"epochs": 100}),
    ("mnist", "m2"): ({"z_dim": 50, "hidden": [500]}, {"epochs": 1000, "lr": 1e-3, "batch_size": 100}),
    # the ADGM paper's sizes (a_dim = z_dim = 100, two hidden layers of 500); M2's training settings, for comparison
    ("mnist", "adgm"): ({"a_dim": 100, "z_dim": 100, "hidden": [500, 500]}, {"epochs": 1000, "lr": 1e-3, "batch_size": 100}),
    # M1 60 epochs, as in the runs of docs/ssl.md (200 gave M1+M2 a higher error)
    ("mnist", "m1m2"): ({"z1_dim": 50, "z2_dim": 50, "m1_hidden": [600, 600], "m2_hidden": [500], "m1_epochs": 60},
                        {"epochs": 1000, "lr": 1e-3, "batch_size": 100}),
}


def run_peer(name: str, data: TrainData) -> dict:
    """LabelSpreading (kNN graph over all training images, uncapped) or an RBF SVC on the labeled images only: the
    baselines ``ppmodels evaluate`` prints (:mod:`ppmodels.analysis.baselines`)."""
    predicted = baseline_predictions(data.train, data.test.x, names=(name,), max_spread=None)[name]
    return {"predicted": predicted, "epochs": None, "curve": []}


class Curve:
    """Trainer callback: valid/test error every ``every`` epochs, and the end of training once ``budget_s`` is spent."""

    def __init__(self, model, data: TrainData, every: int, budget_s: float | None):
        self.model, self.data, self.every, self.budget_s, self.points = model, data, every, budget_s, []
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer, record: dict) -> None:
        elapsed = time.perf_counter() - self.start
        out_of_time = self.budget_s is not None and elapsed > self.budget_s
        if self.model.trains_classifier() and (record["epoch"] % self.every == 0 or out_of_time):
            point = {"epoch": record["epoch"], "elapsed_s": round(elapsed, 1), "valid_elbo": record.get("valid_elbo"),
                     "train_elbo": record.get("train_elbo")}
            for name in ("valid", "test"):
                split = getattr(self.data, name)
                accuracy = float((self.model.predict(split.x) == split.y.numpy()).mean())
                point[f"{name}_error_pct"] = round(100 * (1 - accuracy), 3)
            self.points.append(point)
            print(f"  epoch {record['epoch']:4d}  {elapsed:7.0f}s  valid error {point['valid_error_pct']:.2f}%  test error {point['test_error_pct']:.2f}%", flush=True)
        if getattr(self.model, "stage_", "") == "m1" and record["epoch"] % self.every == 0:
            print(f"  M1 epoch {record['epoch']:4d}  {elapsed:7.0f}s  valid ELBO {record.get('valid_elbo', float('nan')):.2f}", flush=True)
        if out_of_time:
            trainer.state.stopped_early = True  # the time box ends training through the trainer's own stop flag


def run_deep(name: str, data: TrainData, dataset: str, seed: int, args) -> dict:
    options, train = (dict(part) for part in PRESETS[(dataset, name)])
    options.update(json.loads(args.set_json or "{}").get(name, {}))
    overrides = (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size), ("lr_patience", args.lr_patience),
                 ("precision", args.precision))
    train.update({k: v for k, v in overrides if v is not None})
    if args.quick:
        train["epochs"] = min(train.get("epochs", TrainConfig.epochs), 20)
        if "m1_epochs" in options:
            options["m1_epochs"] = train["epochs"] // 2
    cls = get_model_class(name)
    model = cls(cls.config_from_data(data.dataset, **options))
    curve = Curve(model, data, args.eval_every, None if args.budget_min is None else 60 * args.budget_min)
    budgeted = {"patience": None} if dataset == "mnist" else {}  # digits: the CLI's early stopping, as a user gets it
    fit(model, data, TrainConfig(seed=seed, **{**budgeted, **train}), callbacks=[curve])
    state = model.train_state_
    extra = {"active_dims": len(model.active_dims)} if hasattr(model, "active_dims") else {}
    return {"predicted": model.predict(data.test.x), "epochs": state.epoch, "best_epoch": state.best_epoch,
            "selected_by": state.selected_by, "curve": curve.points, "options": options, "train": train, **extra}


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    environment = versions()  # now, so that a library that cannot be imported fails the run before hours of training
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    models = args.models.split(",")
    dataset = imbalanced_digits() if args.dataset == "digits90" else load_dataset(args.dataset, data_dir=args.data_dir, binarize=args.binarize)
    rows = []
    for seed in seeds:
        data = prepare_data(dataset, args.labels, seed=seed)
        for name in models:
            print(f"{args.dataset}-{args.labels} seed {seed}: {name}", flush=True)
            torch.manual_seed(seed)
            start = time.perf_counter()
            out = run_peer(name, data) if name in PEERS else run_deep(name, data, args.dataset, seed, args)
            metrics = classification_metrics(data.test.y.numpy(), out.pop("predicted"), dataset.num_classes)
            rows.append({"dataset": args.dataset, "model": name, "num_labels": args.labels, "seed": seed, "binarize": args.binarize,
                         "test_error_pct": round(100 * (1 - metrics["accuracy"]), 3), "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
                         "wall_time_s": round(time.perf_counter() - start, 1), "peak_memory_mb": round(peak_memory_mb(), 1),
                         "warnings": metrics["warnings"], **out})
            print(f"  -> test error {rows[-1]['test_error_pct']:.2f}%  ({rows[-1]['wall_time_s']:.0f}s)", flush=True)
            out_path = save(rows, args, environment)  # after every row: a later crash loses one run, not the finished ones
    print_summary(summarize(rows))
    print(f"wrote {out_path}")
    return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per model: mean and sd of the test error over seeds, mean balanced accuracy and wall time."""
    summary = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        errors = np.array([r["test_error_pct"] for r in rows if r["model"] == name])
        balanced = np.mean([r["balanced_accuracy"] for r in rows if r["model"] == name])
        wall = np.mean([r["wall_time_s"] for r in rows if r["model"] == name])
        summary[name] = {"test_error_pct_mean": round(float(errors.mean()), 3), "test_error_pct_sd": round(float(errors.std(ddof=1)) if len(errors) > 1 else 0.0, 3),
                         "balanced_accuracy_mean": round(float(balanced), 4), "seeds": len(errors), "wall_time_s_mean": round(float(wall), 1)}
    return summary


def save(rows: list[dict], args, environment: dict[str, str]) -> Path:
    """Write the rows so far and their summary to the JSON (atomically); returns its path."""
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"ssl_{args.dataset}_{args.labels}{'_quick' if args.quick else ''}.json"
    write_json(out, {"command": "python benchmarks/semisupervised.py " + " ".join(sys.argv[1:]), "summary": summarize(rows), "rows": rows,
                     "threads": torch.get_num_threads(), "versions": environment})
    return out


def print_summary(summary: dict[str, dict]) -> None:
    print(f"\n{'model':16s} {'seeds':>5s} {'test error % (mean ± sd)':>26s} {'balanced acc':>12s} {'wall s':>8s}")
    for name, s in summary.items():
        print(f"{name:16s} {s['seeds']:5d} {s['test_error_pct_mean']:18.2f} ± {s['test_error_pct_sd']:5.2f} {s['balanced_accuracy_mean']:12.4f} {s['wall_time_s_mean']:8.0f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits", choices=("digits", "digits90", "mnist"), help="digits90: digits with one class at 90%%")
    p.add_argument("--labels", type=int, default=50, help="class-balanced labels kept (digits 50; MNIST 100/600/1000/3000)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (label draw, initialisation, batches)")
    p.add_argument("--models", default="m1,m2,m1m2,label_spreading,svc", help=f"comma-separated: m1, m2, m1m2, adgm, {', '.join(PEERS)}")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"), help="folder with the MNIST IDX files")
    p.add_argument("--binarize", default="none", choices=("none", "threshold", "dynamic"),
                   help="binarize [0, 1] data as `ppmodels train --binarize` does (dynamic: a fresh Bernoulli draw each epoch)")
    p.add_argument("--epochs", type=int, help="override the preset epochs")
    p.add_argument("--lr", type=float, help="override the preset learning rate")
    p.add_argument("--batch-size", type=int, help="override the preset unlabeled batch size")
    p.add_argument("--lr-patience", type=int, help="halve the learning rate after every this many epochs without a better validation score")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="what the networks compute in while training (default: the preset's, fp32)")
    p.add_argument("--set-json", help='model options per model as JSON, e.g. \'{"m2": {"alpha": 500}}\'')
    p.add_argument("--eval-every", type=int, default=50, help="epochs between points of the error curve")
    p.add_argument("--budget-min", type=float, help="stop each deep model after this many minutes of training")
    p.add_argument("--quick", action="store_true", help="at most 20 epochs, one seed: see it work in minutes")
    p.add_argument("--out", help="JSON output path (default benchmarks/results/ssl_DATASET_LABELS[_quick].json)")
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
