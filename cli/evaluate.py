"""``ppmodels evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ppmodels.commands.evaluate import evaluate as evaluate_run

from .common import Overwrite, handle_errors

SCALARS = ("num_examples", "num_labeled", "accuracy", "balanced_accuracy", "majority_rate", "elbo", "iw_log_likelihood")


@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder written by `ppmodels train`.")],
    data: Annotated[Optional[str], typer.Option(help="Data spec to evaluate on (default: the run's own data; other data is binarized as the run's was).")] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Folder to look for data files in first.")] = None,
    split: Annotated[str, typer.Option(help="Held-out split: test or valid, or all: every row of --data (a separate test file).")] = "test",
    iw_samples: Annotated[int, typer.Option(min=0, help="Importance samples per datum for the IW log-likelihood bound (0: skip).")] = 100,
    out: Annotated[Optional[Path], typer.Option(help="Write the JSON here (a .json path) instead of RUN/evaluation.json.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the Monte Carlo estimates.")] = 0,
    baselines: Annotated[bool, typer.Option(help="Classifiers: also score an untuned SVC and an SVC, logistic regression and label spreading tuned by cross-validation, fitted on the run's labels.")] = True,
    quality: Annotated[bool, typer.Option(help="Models that sample, on labeled data: Frechet distance, precision/recall and mode coverage in the features of a classifier of the data (trained once, cached).")] = True,
    overwrite: Overwrite = False,
) -> None:
    """Evaluate a trained run on a held-out split: accuracy, balanced accuracy, per-class accuracy, confusion matrix,
    ELBO and importance-weighted log-likelihood per datum. Writes RUN/evaluation.json."""
    result = evaluate_run(run, data, split, iw_samples, data_dir=data_dir, out=out, seed=seed, baselines=baselines, quality=quality, overwrite=overwrite)
    typer.echo(f"{result['model']} on {result['data']} ({result['split']} split)")
    if result["data_found"] != result["data"]:
        typer.echo(f"data: {result['data_found']}")
    for key in SCALARS:
        if key in result:
            value = result[key]
            typer.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if result.get("note"):
        typer.echo(result["note"])
    if "per_class_accuracy" in result:
        cells = " ".join("-" if a is None else f"{a:.3f}" for a in result["per_class_accuracy"])
        typer.echo(f"per_class_accuracy: {cells}")
    if result.get("baselines"):
        typer.echo(f"{'same labels, same split':24s} {'accuracy':>9s} {'balanced':>9s}")
        rows = [(f"{result['model']} (this run)", result["accuracy"], result["balanced_accuracy"], "")]
        rows += [(name, score["accuracy"], score["balanced_accuracy"], settings(score)) for name, score in result["baselines"].items()]
        for name, accuracy, balanced, chosen in rows:
            typer.echo(f"{name:24s} {accuracy:9.4f} {balanced:9.4f}  {chosen}".rstrip())
    if result.get("sample_quality"):
        echo_quality(result["sample_quality"])
    for warning in result["warnings"]:
        typer.secho(f"WARNING: {warning}", err=True, fg=typer.colors.RED, bold=True)
    typer.echo(f"wrote {out or run / 'evaluation.json'}")


def echo_quality(quality: dict) -> None:
    """The yardstick's figures, one per line, and each class's share of the samples beside the data's."""
    for key in ("frechet_distance", "precision", "recall"):
        typer.echo(f"{key}: {quality[key]:.4f}")
    coverage = quality["coverage"]
    typer.echo("sample share per class: " + " ".join(f"{s:.3f}" for s in coverage["shares"]))
    typer.echo(f"classes under a tenth of their share: {coverage['num_low_classes']}  (yardstick classifier test accuracy {quality['classifier_test_accuracy']:.4f})")


def settings(score: dict) -> str:
    """A baseline's settings, and how they were chosen (``C=10 gamma=0.0031, 5-fold CV``)."""
    params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in score.get("params", {}).items())
    how = f"{score['folds']}-fold CV" if score.get("tuned") else score.get("reason", "untuned")
    return f"{params}, {how}" if params else how
