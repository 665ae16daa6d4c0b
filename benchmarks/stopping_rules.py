"""Which rule should choose M2's kept epoch with few labels: the table of docs/ssl.md ("Which epoch to keep").

Not a test: it reads result files of ``benchmarks/semisupervised.py`` (the same data, model and seeds, one file per
rule and budget), prints a markdown table of test error (mean +- sd over seeds) per rule and budget, with whether the
longer budget is at least as good as the shorter on every seed, and writes it as JSON::

    python benchmarks/stopping_rules.py --short 12 --long 50 \\
        --rule "validation ELBO=ssl_digits_50_m2_budget_50epochs_valid0.json" \\
        --rule "one label a class held out=ssl_digits_50_m2_budget_12epochs.json,ssl_digits_50_m2_budget_50epochs.json" \\
        --rule "5-fold cv=ssl_digits_50_m2_budget_12epochs_cv.json,ssl_digits_50_m2_budget_50epochs_cv.json" \\
        --out benchmarks/results/ssl_digits_50_m2_stopping_rules.json

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
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppmodels.files import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def rows_by_seed(path: Path) -> dict[int, dict]:
    return {row["seed"]: row for row in json.loads(path.read_text())["rows"]}


def elbo_kept_at(row: dict, budget: int) -> tuple[float, int]:
    """Test error and epoch of the point with the best validation ELBO among the first ``budget`` epochs of a curve."""
    points = [p for p in row["curve"] if p["epoch"] <= budget]
    if len(points) != budget:
        raise SystemExit(f"seed {row['seed']}: the curve has {len(points)} of the first {budget} epochs; run with --eval-every 1")
    best = max(points, key=lambda p: (p["valid_elbo"], -p["epoch"]))
    return best["test_error_pct"], best["epoch"]


def cv_kept_at(row: dict, budget: int) -> tuple[float, int]:
    """Test error and epoch a cross-validated run with a budget of ``budget`` epochs would keep: the first best of the mean
    fold curve's first ``budget`` epochs, its test error read off the (longer) refit's curve."""
    mean = row["cv"]["mean_curve"][:budget]
    epoch = 1 + max(range(len(mean)), key=lambda e: (mean[e], -e))
    point = next(p for p in row["curve"] if p["epoch"] == epoch)  # the refit ran to the long budget's choice, at least this far
    return point["test_error_pct"], epoch


def rule_figures(files: list[Path], short: int, long: int) -> dict[int, dict]:
    """Per seed: test error and kept epoch at the short and at the long budget."""
    if len(files) == 1:
        long_rows = rows_by_seed(files[0])
        return {seed: {"short": (cv_kept_at if row.get("cv") else elbo_kept_at)(row, short), "long": (row["test_error_pct"], row["best_epoch"])}
                for seed, row in long_rows.items()}
    short_rows, long_rows = rows_by_seed(files[0]), rows_by_seed(files[1])
    return {seed: {"short": (short_rows[seed]["test_error_pct"], short_rows[seed]["best_epoch"]),
                   "long": (long_rows[seed]["test_error_pct"], long_rows[seed]["best_epoch"])} for seed in long_rows if seed in short_rows}


def summary(figures: dict[int, dict]) -> dict:
    seeds = sorted(figures)
    out = {"seeds": seeds}
    for budget in ("short", "long"):
        errors = np.array([figures[s][budget][0] for s in seeds])
        out[budget] = {"test_error_pct": errors.tolist(), "kept_epoch": [figures[s][budget][1] for s in seeds],
                       "mean": round(float(errors.mean()), 3), "sd": round(float(errors.std(ddof=1)), 3) if len(seeds) > 1 else None}
    out["longer_never_worse"] = [bool(figures[s]["long"][0] <= figures[s]["short"][0]) for s in seeds]
    return out


def table(results: dict, short: int, long: int) -> str:
    lines = [f"| epoch chosen by | {short} epochs: seeds (kept epoch) | mean ± sd | {long} epochs: seeds (kept epoch) | mean ± sd | "
             f"{long} at least as good as {short}, per seed |", "| --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        cells = []
        for budget in ("short", "long"):
            b = r[budget]
            cells.append(" / ".join(f"{e:.2f} ({k})" for e, k in zip(b["test_error_pct"], b["kept_epoch"])))
            cells.append(f"{b['mean']:.2f}" + (f" ± {b['sd']:.2f}%" if b["sd"] is not None else "%"))
        verdict = " / ".join("yes" if v else "**no**" for v in r["longer_never_worse"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", type=int, required=True, help="the short budget in epochs")
    p.add_argument("--long", type=int, required=True, help="the long budget in epochs")
    p.add_argument("--rule", action="append", required=True, help="NAME=FILE (the long budget, read off for the short) or NAME=SHORT_FILE,LONG_FILE "
                   "(paths relative to benchmarks/results)")
    p.add_argument("--out", help="JSON to write")
    args = p.parse_args(argv)
    results = {}
    for rule in args.rule:
        name, _, files = rule.partition("=")
        paths = [RESULTS / f for f in files.split(",")]
        results[name] = {"files": [str(f) for f in files.split(",")], **summary(rule_figures(paths, args.short, args.long))}
    print(table(results, args.short, args.long))
    if args.out:
        write_json(Path(args.out), {"command": "python benchmarks/stopping_rules.py " + " ".join(sys.argv[1:] if argv is None else argv),
                                    "short": args.short, "long": args.long, "rules": results})
    return results


if __name__ == "__main__":
    main()
