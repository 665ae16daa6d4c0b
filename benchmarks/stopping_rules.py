"""Which rule should choose M2's kept epoch with few labels: the table of docs/ssl.md ("Which epoch to keep").

Not a test: it reads result files of ``benchmarks/semisupervised.py`` (the same data, model and seeds, one file per
rule and budget), prints a markdown table of test error (mean +- sd over seeds) per rule and budget, with whether the
longer budget is at least as good as the shorter on every seed, and writes it as JSON::

    python benchmarks/stopping_rules.py --short 12 --long 50 \\
        --rule "validation ELBO=ssl_digits_50_m2_budget_50epochs_valid0.json" \\
        --rule "one label a class held out=ssl_digits_50_m2_budget_12epochs.json,ssl_digits_50_m2_budget_50epochs.json" \\
        --rule "5-fold cv=ssl_digits_50_m2_budget_12epochs_cv.json,ssl_digits_50_m2_budget_50epochs_cv.json" \\
        --out benchmarks/results/ssl_digits_50_m2_stopping_rules.json

For spectra (``--spectra``) it reads cells of ``benchmarks/hyperspectral.py`` instead: runs that kept their last
epoch with ``--curve`` (M2's balanced accuracy on the scored pixels after every epoch) and, for cross-validation,
``--select-by cv`` runs of the long budget (``--cv``) on the same scenes, seeds and labels, whose fold curves choose the
epoch. Every figure is read off the curve: a run with all the labels trains the same epochs whatever its rule and
budget (the refit of cross-validation too), which the checks of this mode confirm against each ``--cv`` cell's own
result::

    python benchmarks/stopping_rules.py --short 12 --long 50 --spectra hyperspectral_components8_curves_50epochs.json \
        --cv hyperspectral_voronoi_components8_cv_50epochs.json,hyperspectral_parcel_components8_cv_50epochs.json \
        --out benchmarks/results/hyperspectral_stopping_rules.json

A rule given one file (a run of the long budget with a curve point after every epoch, ``--eval-every 1``) has its
short budget read off that run: the first ``--short`` epochs of a run are those of a shorter run (docs/ssl.md,
"Stability"; for the folds of ``--select-by cv``, tests/train/test_cv_selection.py). Chosen by the validation ELBO, the
short budget keeps the epoch among them with the best validation ELBO; chosen by cross-validation (rows with a ``cv``
record), it keeps the epoch with the best mean fold score among them, and the refit's curve, which is a shorter
refit's epoch for epoch, gives its test error (the long budget's refit runs at least that far: the first best of the
first epochs is also the first best of all epochs, or an earlier epoch won).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_files import read_results  # noqa: E402
from ppmodels.files import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def read_entries(path: Path, entries: str) -> list[dict]:
    """The ``entries`` (``rows`` or ``cells``) of a results file; a missing or foreign file stops with one line."""
    try:
        return read_results(path, (entries,))[entries]
    except ValueError as error:
        raise SystemExit(f"error: {error}; paths are relative to {RESULTS}")


def rows_by_seed(path: Path) -> dict[int, dict]:
    return {row["seed"]: row for row in read_entries(path, "rows")}


def elbo_kept_at(row: dict, budget: int) -> tuple[float, int]:
    """Test error and epoch of the point with the best validation ELBO among the first ``budget`` epochs of a curve."""
    points = [p for p in row["curve"] if p["epoch"] <= budget]
    if len(points) != budget:
        raise SystemExit(f"seed {row['seed']}: the curve has {len(points)} of the first {budget} epochs; run with --eval-every 1")
    best = max(points, key=lambda p: (p["valid_elbo"], -p["epoch"]))
    return best["test_error_pct"], best["epoch"]


def first_best(values: list[float], budget: int) -> int:
    """The epoch (1-based) of the best of the first ``budget`` values (ties: the earlier)."""
    return 1 + max(range(min(budget, len(values))), key=lambda e: (values[e], -e))


def cv_kept_at(row: dict, budget: int) -> tuple[float, int]:
    """Test error and epoch a cross-validated run with a budget of ``budget`` epochs would keep: the first best of the mean
    fold curve's first ``budget`` epochs, its test error read off the (longer) refit's curve."""
    epoch = first_best(row["cv"]["mean_curve"], budget)
    point = next(p for p in row["curve"] if p["epoch"] == epoch)  # the refit ran to the long budget's choice, at least this far
    return point["test_error_pct"], epoch


#: the rules read off a spectra curve: (name, kept epoch given the cell's curve, its cv record or None, and the budget)
SPECTRA_RULES = (
    ("validation ELBO", lambda curve, cv, budget: first_best([p["valid_elbo"] for p in curve], budget)),
    ("5-fold cross-validation", lambda curve, cv, budget: None if cv is None else first_best(cv["mean_curve"], budget)),
    ("last epoch", lambda curve, cv, budget: budget),
    ("best epoch in hindsight (no rule can know it)", lambda curve, cv, budget: first_best([p["balanced_accuracy"] for p in curve], budget)),
)


def spectra_figures(curve_files: list[Path], cv_files: list[Path], short: int, long: int) -> dict[str, dict[str, dict[int, dict]]]:
    """``{"SCENE, L labels a class": {rule: {seed: {"short": (balanced accuracy, epoch), "long": ...}}}}``, read off the
    curves of ``curve_files``' cells; the cross-validation rule where a ``cv_files`` cell has the same scene, seed and
    labels. Stops with one line when a curve is shorter than ``long`` or a cv cell's kept model is not its curve's."""
    key = lambda c: (c["scene"], c["labels_per_class"], c["seed"])  # noqa: E731
    curves = {key(c): c["m2_curve"] for f in curve_files for c in read_entries(f, "cells") if "m2_curve" in c}
    cvs = {key(c): c for f in cv_files for c in read_entries(f, "cells")}
    if not curves:
        raise SystemExit(f"error: no cell of {', '.join(map(str, curve_files))} has a curve; run benchmarks/hyperspectral.py with --curve")
    groups: dict[str, dict[str, dict[int, dict]]] = {}
    for (scene, lpc, seed), curve in sorted(curves.items()):
        if len(curve) < long:
            raise SystemExit(f"{scene} seed {seed}, {lpc} labels a class: the curve has {len(curve)} epochs, fewer than --long {long}")
        cell = cvs.get((scene, lpc, seed))
        cv = cell["m2_selection"]["cv"] if cell else None
        if cell:  # the refit trained the curve's first epochs: its kept model is the curve's point
            epoch, measured = cell["m2_selection"]["best_epoch"], cell["m2"]["balanced_accuracy"]
            if abs(curve[epoch - 1]["balanced_accuracy"] - measured) > 1e-4:
                raise SystemExit(f"{scene} seed {seed}, {lpc} labels a class: the cv run kept epoch {epoch} at {measured:.4f}, the curve has "
                                 f"{curve[epoch - 1]['balanced_accuracy']:.4f} there; the runs differ (other options, front end or version)")
        for name, rule in SPECTRA_RULES:
            epochs = {budget: rule(curve, cv, n) for budget, n in (("short", short), ("long", long))}
            if None not in epochs.values():
                groups.setdefault(f"{scene}, {lpc} labels a class", {}).setdefault(name, {})[seed] = {
                    budget: (curve[e - 1]["balanced_accuracy"], e) for budget, e in epochs.items()}
    return groups


def rule_figures(files: list[Path], short: int, long: int) -> dict[int, dict]:
    """Per seed: test error and kept epoch at the short and at the long budget."""
    if len(files) == 1:
        long_rows = rows_by_seed(files[0])
        return {seed: {"short": (cv_kept_at if row.get("cv") else elbo_kept_at)(row, short), "long": (row["test_error_pct"], row["best_epoch"])}
                for seed, row in long_rows.items()}
    short_rows, long_rows = rows_by_seed(files[0]), rows_by_seed(files[1])
    return {seed: {"short": (short_rows[seed]["test_error_pct"], short_rows[seed]["best_epoch"]),
                   "long": (long_rows[seed]["test_error_pct"], long_rows[seed]["best_epoch"])} for seed in long_rows if seed in short_rows}


def summary(figures: dict[int, dict], metric: str = "test_error_pct", higher_is_better: bool = False) -> dict:
    seeds = sorted(figures)
    out = {"seeds": seeds}
    for budget in ("short", "long"):
        values = np.array([figures[s][budget][0] for s in seeds])
        out[budget] = {metric: values.tolist(), "kept_epoch": [figures[s][budget][1] for s in seeds],
                       "mean": round(float(values.mean()), 4), "sd": round(float(values.std(ddof=1)), 4) if len(seeds) > 1 else None}
    out["longer_never_worse"] = [bool((figures[s]["long"][0] >= figures[s]["short"][0]) if higher_is_better else
                                      (figures[s]["long"][0] <= figures[s]["short"][0])) for s in seeds]
    return out


def table(results: dict, short: int, long: int, metric: str = "test_error_pct", digits: int = 2, unit: str = "%") -> str:
    lines = [f"| epoch chosen by | {short} epochs: seeds (kept epoch) | mean ± sd | {long} epochs: seeds (kept epoch) | mean ± sd | "
             f"{long} at least as good as {short}, per seed |", "| --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        cells = []
        for budget in ("short", "long"):
            b = r[budget]
            cells.append(" / ".join(f"{e:.{digits}f} ({k})" for e, k in zip(b[metric], b["kept_epoch"])))
            cells.append(f"{b['mean']:.{digits}f}" + (f" ± {b['sd']:.{digits}f}{unit}" if b["sd"] is not None else unit))
        verdict = " / ".join("yes" if v else "**no**" for v in r["longer_never_worse"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", type=int, required=True, help="the short budget in epochs")
    p.add_argument("--long", type=int, required=True, help="the long budget in epochs")
    p.add_argument("--rule", action="append", help="NAME=FILE (the long budget, read off for the short) or NAME=SHORT_FILE,LONG_FILE "
                   "(paths relative to benchmarks/results)")
    p.add_argument("--spectra", help="comma-separated benchmarks/hyperspectral.py results with --curve cells (relative to benchmarks/results): "
                   "every rule read off their curves, per scene and label count")
    p.add_argument("--cv", help="with --spectra: comma-separated --select-by cv results of the long budget on the same cells")
    p.add_argument("--out", help="JSON to write")
    args = p.parse_args(argv)
    command = "python benchmarks/stopping_rules.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.spectra:
        files = lambda names: [RESULTS / f for f in names.split(",")] if names else []  # noqa: E731
        groups = {group: {name: summary(figures, "balanced_accuracy", higher_is_better=True) for name, figures in rules.items()}
                  for group, rules in spectra_figures(files(args.spectra), files(args.cv), args.short, args.long).items()}
        for group, results in groups.items():
            print(f"\n{group} (balanced accuracy)\n" + table(results, args.short, args.long, "balanced_accuracy", digits=3, unit=""))
        if args.out:
            write_json(Path(args.out), {"command": command, "short": args.short, "long": args.long, "spectra": args.spectra, "cv": args.cv,
                                        "groups": groups})
        return groups
    if not args.rule:
        p.error("give --rule NAME=FILE (semisupervised.py results) or --spectra FILES (hyperspectral.py results)")
    results = {}
    for rule in args.rule:
        name, _, files = rule.partition("=")
        paths = [RESULTS / f for f in files.split(",")]
        results[name] = {"files": [str(f) for f in files.split(",")], **summary(rule_figures(paths, args.short, args.long))}
    print(table(results, args.short, args.long))
    if args.out:
        write_json(Path(args.out), {"command": command, "short": args.short, "long": args.long, "rules": results})
    return results


if __name__ == "__main__":
    main()
