"""Semi-supervised benchmark (Kingma et al. 2014, Table 1): M2 and M1+M2 against scikit-learn peers on the same splits.

Not a test: it prints a table and writes JSON to ``benchmarks/results/``. Every row is one (model, seed) on the
same labeled subset: dataset, model, number of labels, seed, test error %, balanced accuracy, epochs, wall time,
peak memory, and, for the deep models, a curve of valid/test error every ``--eval-every`` epochs.

    python benchmarks/semisupervised.py --dataset digits --labels 50 --seeds 0,1,2,3,4          # digits-50 with peers
    python benchmarks/semisupervised.py --dataset mnist --labels 100 --models m1m2 --budget-min 25  # time-boxed MNIST-100
    python benchmarks/semisupervised.py --quick                                                   # minutes: few epochs, one seed
    python benchmarks/semisupervised.py --merge OUT.json SEED0.json SEED2.json                    # calls run side by side, as one file

Protocol: the data layer's fixed splits (digits: stratified 70/10/20; MNIST: 50k train / 10k valid / 10k test),
``--labels`` class-balanced labels drawn with the seed, the rest of the training split unlabeled. Each deep model runs
under each of ``--protocols``, side by side: ``budget`` (the default of ``ppmodels train``: the kept epoch and early
stopping are chosen by ``--valid-labels`` of the N labels, held out of training; the validation split's labels are
never read) and ``paper`` (chosen by the validation split's labels, as Kingma et al. 2014 did with MNIST's 10,000
labeled validation images). The baselines (:mod:`ppmodels.analysis.baselines`: an untuned SVC, and an SVC, logistic
regression and label spreading tuned by stratified cross-validation) are fitted on the same N labels, once a seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppmodels.analysis.baselines import ALL_BASELINES as PEERS, BASELINES, fit_baselines, predict_rows  # noqa: E402
from ppmodels.commands.train import selects_with_labels  # noqa: E402
from ppmodels.metrics import classification_metrics  # noqa: E402
from ppmodels.data import PROTOCOLS, TrainData, load_dataset, prepare_data  # noqa: E402
from ppmodels.files import write_json  # noqa: E402
from ppmodels.infer import TrainConfig, fit, fit_cv  # noqa: E402
from ppmodels.infer.trainer import AVERAGE_STAGES, SELECT_BY  # noqa: E402
from ppmodels.models import get_model_class  # noqa: E402
from ppmodels.runs import peak_memory_mb, versions  # noqa: E402

from benchmarks.imbalanced import imbalanced_digits, imbalanced_tabular  # noqa: E402
from benchmarks.results_files import read_results  # noqa: E402
from benchmarks.tabular import tabular_dataset, write_tabular  # noqa: E402

#: data sets drawn afresh for every seed (a new table written as partly labeled csv files, read through the data layer)
GENERATED = ("tabular", "tabular90")

# Model options and training settings per (dataset, model); the MNIST ones follow the paper's sizes.
# digits: the defaults of `ppmodels train MODEL --data digits --labels 50` (model options and TrainConfig), so the
# benchmark measures what a user gets without flags; MNIST: the paper's sizes, time-boxed with --budget-min
PRESETS = {
    # the small data sets (digits, digits90 and the photometric tables, read as `ppmodels train MODEL --data
    # train.csv?label=class` reads them): every model at its defaults
    **{(data, model): ({}, {}) for data in ("digits", "digits90") + GENERATED for model in ("m1", "m2", "m1m2", "adgm")},
    ("mnist", "m1"): ({}, {"epochs": 100}),
    ("mnist", "m2"): ({"z_dim": 50, "hidden": [500]}, {"epochs": 1000, "lr": 1e-3, "batch_size": 100}),
    # the ADGM paper's sizes (a_dim = z_dim = 100, two hidden layers of 500); M2's training settings, for comparison
    ("mnist", "adgm"): ({"a_dim": 100, "z_dim": 100, "hidden": [500, 500]}, {"epochs": 1000, "lr": 1e-3, "batch_size": 100}),
    # M1 60 epochs, as in the runs of docs/ssl.md (200 gave M1+M2 a higher error)
    ("mnist", "m1m2"): ({"z1_dim": 50, "z2_dim": 50, "m1_hidden": [600, 600], "m2_hidden": [500], "m1_epochs": 60},
                        {"epochs": 1000, "lr": 1e-3, "batch_size": 100}),
}


def run_peer(name: str, data: TrainData, seed: int) -> dict:
    """A baseline ``ppmodels evaluate`` prints (:mod:`ppmodels.analysis.baselines`; label spreading's graph over all
    training images, uncapped), fitted on the run's N labels: the training labels and those held out for selection."""
    estimator, info = fit_baselines(data.labeled, names=(name,), max_spread=None, seed=seed)[name]
    predicted = predict_rows(estimator, data.test.x)  # a chunk at a time; label spreading's 0/0 rows get class 0
    return {"predicted": predicted, "epochs": None, "curve": [], **info}


class Curve:
    """Trainer callback: valid/test error every ``every`` epochs, and the end of training once ``budget_s`` is spent."""

    def __init__(self, model, data: TrainData, every: int, budget_s: float | None):
        self.model, self.data, self.every, self.budget_s, self.points = model, data, every, budget_s, []
        # reported, never used for selection: the error on the whole labeled validation split, as the paper's curves
        self.splits = {"valid": data.dataset.split("valid"), "test": data.test}
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer, record: dict) -> None:
        elapsed = time.perf_counter() - self.start
        out_of_time = self.budget_s is not None and elapsed > self.budget_s
        if self.model.trains_classifier() and (record["epoch"] % self.every == 0 or out_of_time):
            point = {"epoch": record["epoch"], "elapsed_s": round(elapsed, 1), "valid_elbo": record.get("valid_elbo"),
                     "train_elbo": record.get("train_elbo"), "selection_balanced_accuracy": record.get("valid_accuracy")}
            for name, split in self.splits.items():
                truth = split.y.numpy()
                if (truth >= 0).any():  # a generated table's validation rows carry no label
                    accuracy = float((self.model.predict(split.x)[truth >= 0] == truth[truth >= 0]).mean())
                    point[f"{name}_error_pct"] = round(100 * (1 - accuracy), 3)
            self.points.append(point)
            print(f"  epoch {record['epoch']:4d}  {elapsed:7.0f}s  valid error {point.get('valid_error_pct', math.nan):.2f}%  "
                  f"test error {point['test_error_pct']:.2f}%", flush=True)
        if getattr(self.model, "stage_", "") == "m1" and record["epoch"] % self.every == 0:
            print(f"  M1 epoch {record['epoch']:4d}  {elapsed:7.0f}s  valid ELBO {record.get('valid_elbo', float('nan')):.2f}", flush=True)
        if out_of_time:
            trainer.state.stopped_early = True  # the time box ends training through the trainer's own stop flag


def run_deep(name: str, data: TrainData, dataset: str, seed: int, args) -> dict:
    options, train = (dict(part) for part in PRESETS[(dataset, name)])
    options.update(json.loads(args.set_json or "{}").get(name, {}))
    overrides = (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size), ("lr_patience", args.lr_patience),
                 ("precision", args.precision), ("select_by", args.select_by), ("cv_folds", args.cv_folds), ("average_epochs", args.average_epochs),
                 ("average_stages", args.average_stages))
    train.update({k: v for k, v in overrides if v is not None})
    if args.quick:
        train["epochs"] = min(train.get("epochs", TrainConfig.epochs), 20)
        if "m1_epochs" in options:
            options["m1_epochs"] = train["epochs"] // 2
    cls = get_model_class(name)
    model = cls(cls.config_from_data(data.dataset, **options))
    curve = Curve(model, data, args.eval_every, None if args.budget_min is None else 60 * args.budget_min)
    budgeted = {"patience": None} if dataset == "mnist" else {}  # digits: the CLI's early stopping, as a user gets it
    config = TrainConfig(seed=seed, **{**budgeted, **train})
    (fit_cv if config.select_by == "cv" else fit)(model, data, config, callbacks=[curve])  # cv: the curve is the refit's
    state = model.train_state_
    extra = {"active_dims": len(model.active_dims)} if hasattr(model, "active_dims") else {}
    if state.cv is not None:
        extra["cv"] = state.cv
    return {"predicted": model.predict(data.test.x), "epochs": state.epoch, "best_epoch": state.best_epoch,
            "selected_by": state.selected_by, "selection": data.selection, "curve": curve.points, "options": options, "train": train, **extra}


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.merge:
        return merge_files(*(Path(path) for path in args.merge))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    environment = versions()  # now, so that a library that cannot be imported fails the run before hours of training
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    models = args.models.split(",")
    dataset = None if args.dataset in GENERATED else imbalanced_digits() if args.dataset == "digits90" else \
        load_dataset(args.dataset, data_dir=args.data_dir, binarize=args.binarize)
    protocols = args.protocols.split(",")
    rows = []
    for seed in seeds:
        if args.dataset in GENERATED:  # a new table each seed, its labels written into the file: every one is used
            dataset = generated(args.dataset, args.labels, seed, Path(tempfile.mkdtemp(prefix=f"ssl_{args.dataset}_")))
        num_labels = None if args.dataset in GENERATED else args.labels
        budget = prepare_data(dataset, num_labels, seed=seed)  # the N labels every row of this seed gets
        for name, protocol in ((n, p) for n in models for p in ([None] if n in PEERS else protocols)):
            print(f"{args.dataset}-{args.labels} seed {seed}: {name}{'' if protocol is None else f' ({protocol} protocol)'}", flush=True)
            torch.manual_seed(seed)
            start = time.perf_counter()
            if protocol is None:
                data, out = budget, run_peer(name, budget, seed)
            else:
                uses = selects_with_labels(get_model_class(name), TrainConfig())  # M1 keeps its epoch by the ELBO: nothing held out
                cv = args.select_by == "cv"  # every label trains; the folds choose
                data = prepare_data(dataset, num_labels, seed=seed, protocol=protocol, valid_labels=args.valid_labels if uses and not cv else 0)
                out = run_deep(name, data, args.dataset, seed, args)
            metrics = classification_metrics(data.test.y.numpy(), out.pop("predicted"), dataset.num_classes)
            rows.append({"dataset": args.dataset, "model": name, "protocol": protocol, "num_labels": args.labels, "seed": seed, "binarize": args.binarize,
                         "test_error_pct": round(100 * (1 - metrics["accuracy"]), 3), "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
                         "wall_time_s": round(time.perf_counter() - start, 1), "peak_memory_mb": round(peak_memory_mb(), 1),
                         "warnings": metrics["warnings"], **out})
            print(f"  -> test error {rows[-1]['test_error_pct']:.2f}%  ({rows[-1]['wall_time_s']:.0f}s)", flush=True)
            out_path = save(rows, args, environment)  # after every row: a later crash loses one run, not the finished ones
    print_summary(summarize(rows))
    print(f"wrote {out_path}")
    return rows


def merge_files(target: Path, *sources: Path) -> list[dict]:
    """``--merge``: :func:`merge_results` of the files ``sources`` written to ``target``; returns the merged rows. A
    file that cannot be read, or files that are not one experiment, stop the call with one line."""
    if target in sources:
        raise SystemExit(f"error: --merge would overwrite its input {target}; write the merged file elsewhere")
    try:
        merged = merge_results([read_results(path, ("command", "rows")) for path in sources])
    except ValueError as error:
        raise SystemExit(f"error: --merge: {error}")
    write_json(target, merged)
    print_summary(merged["summary"])
    print(f"wrote {target}: {len(merged['rows'])} rows from {len(sources)} files")
    return merged["rows"]


def generated(name: str, labels: int, seed: int, folder: Path):
    """The dataset of a :data:`GENERATED` name for ``seed``, its csv files written into ``folder``: ``tabular`` with
    ``labels`` labels a class, ``tabular90`` with ``labels`` labels in all, 90% of them of the 90% class."""
    if name == "tabular90":
        return imbalanced_tabular(folder, labels, seed)
    write_tabular(folder, labels_per_class=labels, seed=seed)
    return tabular_dataset(folder, seed=seed)


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per model: mean and sd over seeds of the test error and the balanced accuracy, mean wall time."""
    summary = {}
    for name in dict.fromkeys(row_name(r) for r in rows):
        errors = np.array([r["test_error_pct"] for r in rows if row_name(r) == name])
        balanced = np.array([r["balanced_accuracy"] for r in rows if row_name(r) == name])
        wall = np.mean([r["wall_time_s"] for r in rows if row_name(r) == name])
        sd = lambda v: round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4)  # noqa: E731
        summary[name] = {"test_error_pct_mean": round(float(errors.mean()), 3), "test_error_pct_sd": sd(errors),
                         "balanced_accuracy_mean": round(float(balanced.mean()), 4), "balanced_accuracy_sd": sd(balanced),
                         "seeds": len(errors), "wall_time_s_mean": round(float(wall), 1)}
    return summary


def row_name(row: dict) -> str:
    """``m2 [budget]`` for a deep model's row, the baseline's name for a baseline's."""
    return row["model"] if row.get("protocol") is None else f"{row['model']} [{row['protocol']}]"


def save(rows: list[dict], args, environment: dict[str, str]) -> Path:
    """Write the rows so far and their summary to the JSON (atomically); returns its path."""
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"ssl_{args.dataset}_{args.labels}{'_quick' if args.quick else ''}.json"
    write_json(out, {"command": "python benchmarks/semisupervised.py " + " ".join(sys.argv[1:]), "summary": summarize(rows), "rows": rows,
                     "threads": torch.get_num_threads(), "versions": environment})
    return out


def print_summary(summary: dict[str, dict]) -> None:
    print(f"\n{'model':24s} {'seeds':>5s} {'test error % (mean ± sd)':>26s} {'balanced acc (mean ± sd)':>25s} {'wall s':>8s}")
    for name, s in summary.items():
        print(f"{name:24s} {s['seeds']:5d} {s['test_error_pct_mean']:18.2f} ± {s['test_error_pct_sd']:5.2f} "
              f"{s['balanced_accuracy_mean']:16.4f} ± {s['balanced_accuracy_sd']:6.4f} {s['wall_time_s_mean']:8.0f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits", choices=("digits", "digits90", "mnist") + GENERATED,
                   help="digits90: digits with one class at 90%%; tabular: a photometric table (benchmarks/tabular.py) drawn "
                        "for each seed and read as a partly labeled csv; tabular90: the same with stars at 90%% of rows and labels")
    p.add_argument("--labels", type=int, default=50, help="class-balanced labels kept (digits 50; MNIST 100/600/1000/3000); tabular: "
                   "labels per class written into the csv; tabular90: labels in all, 90%% of them stars")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (label draw, initialisation, batches)")
    p.add_argument("--models", default="m1,m2,m1m2," + ",".join(BASELINES), help=f"comma-separated: m1, m2, m1m2, adgm, {', '.join(PEERS)}")
    p.add_argument("--protocols", default="budget,paper", help=f"comma-separated selection protocols for the deep models: {', '.join(PROTOCOLS)}")
    p.add_argument("--valid-labels", type=int, help="budget protocol: labels of the N held out to choose the kept epoch (default: a fifth of each class's)")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"), help="folder with the MNIST IDX files")
    p.add_argument("--binarize", default="none", choices=("none", "threshold", "dynamic"),
                   help="binarize [0, 1] data as `ppmodels train --binarize` does (dynamic: a fresh Bernoulli draw each epoch)")
    p.add_argument("--epochs", type=int, help="override the preset epochs")
    p.add_argument("--lr", type=float, help="override the preset learning rate")
    p.add_argument("--batch-size", type=int, help="override the preset unlabeled batch size")
    p.add_argument("--lr-patience", type=int, help="halve the learning rate after every this many epochs without a better validation score")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="what the networks compute in while training (default: the preset's, fp32)")
    p.add_argument("--select-by", choices=SELECT_BY, help="the deep models' TrainConfig.select_by (default: its auto); cv: the epoch "
                   "count cross-validated over the N labels, then a refit on all of them (its curve is the refit's)")
    p.add_argument("--cv-folds", type=int, help="--select-by cv: the number of folds (default: 5, at most the smallest class's labels)")
    p.add_argument("--average-epochs", type=int, help="the deep models' TrainConfig.average_epochs: score, select and keep the average "
                   "of the weights at the ends of this many epochs (default: 0, the last weights)")
    p.add_argument("--average-stages", choices=AVERAGE_STAGES, help="with --average-epochs, the stages that average: all "
                   "(default), or final (M1+M2: only its M2 stage, so M2 reads the codes of M1's last weights)")
    p.add_argument("--set-json", help='model options per model as JSON, e.g. \'{"m2": {"alpha": 500}}\'')
    p.add_argument("--eval-every", type=int, default=50, help="epochs between points of the error curve")
    p.add_argument("--budget-min", type=float, help="stop each deep model after this many minutes of training")
    p.add_argument("--quick", action="store_true", help="at most 20 epochs, one seed: see it work in minutes")
    p.add_argument("--out", help="JSON output path (default benchmarks/results/ssl_DATASET_LABELS[_quick].json)")
    p.add_argument("--merge", nargs="+", metavar=("OUT", "JSON"), help="write these results files (calls of one data set and "
                   "settings on other seeds or models, e.g. one a core) as one results file OUT, the summary recomputed, and stop")
    args = p.parse_args(argv)
    if args.merge is not None and len(args.merge) < 2:
        p.error("--merge needs the file to write and at least one results file: --merge OUT JSON [JSON ...]")
    return args


def merge_results(results: list[dict]) -> dict:
    """Results files of separate calls as one: their rows in order, the summary recomputed, ``commands``: every call's
    command. Raises ``ValueError`` when the files are not one experiment: another data set, label count or
    binarisation, another library version or thread count, a row name (model and protocol) trained with other
    options or settings, or one (row name, seed) in two files."""
    if not results:
        raise ValueError("nothing to merge: give at least one results file")
    rows = [row for r in results for row in r["rows"]]
    for key in ("dataset", "num_labels", "binarize"):
        values = {json.dumps(row.get(key)) for row in rows}
        if len(values) > 1:
            raise ValueError(f"the rows differ in {key} ({', '.join(sorted(values))}); merge only calls on one data set and label count")
    for key in ("versions", "threads"):
        values = {json.dumps(r.get(key), sort_keys=True) for r in results}
        if len(values) > 1:
            raise ValueError(f"the files differ in {key} ({' and '.join(sorted(values))}); rows measured in other environments are not one table")
    settings: dict[str, tuple] = {}
    seen = set()
    for row in rows:
        name = row_name(row)
        if (name, row["seed"]) in seen:
            raise ValueError(f"two files both have {name} seed {row['seed']}; leave one of them out")
        seen.add((name, row["seed"]))
        setting = (json.dumps(row.get("options"), sort_keys=True), json.dumps(row.get("train"), sort_keys=True))
        if settings.setdefault(name, setting) != setting:
            raise ValueError(f"{name} was trained with other options or settings in different files ({' against '.join(settings[name])} "
                             f"and {' against '.join(setting)}); merge only calls of one setting")
    commands = [command for r in results for command in r.get("commands") or [r["command"]]]
    return {"command": "python benchmarks/semisupervised.py --merge (of the commands below)", "commands": commands,
            "summary": summarize(rows), "rows": rows, "threads": results[0].get("threads"), "versions": results[0].get("versions")}


if __name__ == "__main__":
    main()
