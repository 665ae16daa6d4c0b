"""``ppmodels diagnose``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ppmodels.commands.diagnose import DIAGNOSTICS, IDATA, NUTS_IDATA, REPORT, diagnose as diagnose_run, summary_table

from ppmodels.analysis.diagnostics import STATUSES

from .common import Overwrite, handle_errors

#: ``--fail-on`` levels, and the exit code when the overall verdict reaches the level (2 is a usage or input error)
FAIL_ON, FAIL_EXIT_CODE = STATUSES[1:], 3


@handle_errors
def diagnose(
    run: Annotated[Path, typer.Argument(help="Run folder written by `ppmodels train`.")],
    data: Annotated[Optional[str], typer.Option(help="Data spec to diagnose on (default: the run's own data; other data is binarized as the run's was).")] = None,
    split: Annotated[str, typer.Option(help="Which part of the data: test, valid, train or all.")] = "test",
    num_data: Annotated[int, typer.Option(min=1, help="Number of data points to diagnose (drawn at random from the split).")] = 500,
    particles: Annotated[int, typer.Option(min=21, help="Guide draws per data point (at least 21; with 1000 the share of bad k-hat repeats within 2 points across seeds, with 200 it does not).")] = 1000,
    stored_draws: Annotated[int, typer.Option(min=1, help="Draws per data point kept in idata.nc (the diagnostics use all --particles; the file grows with data x draws x features).")] = 50,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: RUN/diagnostics).")] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Folder to look for data files in first (MNIST).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (which data, which draws).")] = 0,
    report: Annotated[bool, typer.Option(help="Write report.html with figures.")] = True,
    quality: Annotated[bool, typer.Option(help="Models that sample, on labeled data: the sample-quality yardstick (Frechet distance, precision/recall, mode coverage) beside the report's sample grid.")] = True,
    nuts: Annotated[bool, typer.Option(help="ppca and gmm only: compare the fit with a NUTS posterior of its globals on the training data it saw (refused above 200,000 values; progress on stderr).")] = False,
    nuts_samples: Annotated[int, typer.Option(min=10, help="NUTS draws per chain after as many warmup steps (with --nuts; trusted at R-hat < 1.01 and bulk ESS > 100 per chain).")] = 1000,
    nuts_chains: Annotated[int, typer.Option(min=2, help="NUTS chains, run one after another (R-hat needs 2 or more).")] = 4,
    fail_on: Annotated[Optional[str], typer.Option(help="Exit with code 3 when the overall verdict is this bad or worse: bad, or warning (warning or bad). The files are written first.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Check the posterior of a trained run: Pareto k-hat, importance-weighted log-likelihood against the ELBO,
    calibration of q(y|x), posterior predictive checks and training convergence (and, with --nuts, a NUTS gold
    standard for ppca and gmm, its draws in nuts.nc). Writes idata.nc (ArviZ), diagnostics.json and report.html.
    A model without a likelihood (the GAN) gets its samples judged instead: the yardstick beside a sample grid, mode
    coverage, the training losses and the discriminator's checks; idata.nc holds generator draws.
    The overall verdict (good, warning or bad) is diagnostics.json's "overall"; with --fail-on a pipeline stops on it
    (exit code 3)."""
    if fail_on is not None and fail_on not in FAIL_ON:
        raise typer.BadParameter(f"--fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    result = diagnose_run(run, data, out, split=split, num_data=num_data, particles=particles, seed=seed, data_dir=data_dir, report=report,
                          stored_draws=stored_draws, quality=quality,
                          nuts=nuts, nuts_samples=nuts_samples, nuts_warmup=nuts_samples, nuts_chains=nuts_chains,
                          overwrite=overwrite, progress=True)
    typer.echo(summary_table(result))
    folder = Path(out) if out is not None else Path(run) / "diagnostics"
    written = [IDATA, DIAGNOSTICS] + ([REPORT] if report else []) + ([NUTS_IDATA] if nuts else [])
    typer.echo(f"wrote {', '.join(str(folder / name) for name in written)}")
    status = result["overall"]["status"]
    typer.echo(f"overall: {status}")
    if fail_on is not None and STATUSES.index(status) >= STATUSES.index(fail_on):
        typer.echo(f"error: the overall verdict is {status} (--fail-on {fail_on}): "
                   + "; ".join(p["code"] for p in result["overall"]["problems"]), err=True)
        raise typer.Exit(FAIL_EXIT_CODE)
