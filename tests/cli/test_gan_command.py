"""``ppmodels train gan`` and ``ppmodels evaluate`` on a GAN: no ELBO, the yardstick instead, and a failed run said so."""

import json

import pytest

from typer.testing import CliRunner

from ppmodels_cli.main import app

runner = CliRunner()


def test_a_collapsed_gan_run_is_reported_as_a_failure(tmp_path):
    run = tmp_path / "gan"
    result = runner.invoke(app, ["train", "gan", "--data", "digits", "--out", str(run), "--epochs", "2", "--z-dim", "8",
                                 "--set", "channels=[8,16]", "--quiet", "--sample-every", "0"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selected_by"] == "last_epoch" and "test_elbo" not in summary
    assert summary["sample_quality"]["coverage"]["num_low_classes"] >= 5  # two epochs on 1257 images: a few modes only
    assert any("mode collapse" in w for w in summary["warnings"]) and "WARNING: mode collapse" in result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["frechet_distance"] > 0 and "loss_generator" in r and "train_elbo" not in r for r in records)

    result = runner.invoke(app, ["evaluate", str(run), "--iw-samples", "5"])
    assert result.exit_code == 0, result.output
    assert "elbo: not available" in result.output and "frechet_distance:" in result.output and "WARNING: mode collapse" in result.output
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["iw_log_likelihood"] == "not available" and evaluation["sample_quality"]["num_samples"] == summary["sample_quality"]["num_samples"]
    assert evaluation["sample_quality"]["frechet_distance"] == summary["sample_quality"]["frechet_distance"]  # same seed, same samples


FORCED = {"collapsed": ["--set", "d_lr=0.05"],  # the discriminator's rate 250 times DC-GAN's: it rejects everything
          "diverged": ["--set", "g_lr=0.05"]}   # the generator's: it jumps from mode to mode, its Frechet distance swinging


@pytest.mark.parametrize("failure", sorted(FORCED))
def test_forced_failures_are_said_by_evaluate_and_the_report(tmp_path, failure):
    """A GAN forced to fail (real training runs, not edited metrics) is a failure in evaluate's warnings, in
    diagnose's overall verdict (exit 3 with --fail-on bad) and at the top of report.html, whose sample grid has the
    yardstick's numbers beside it."""
    run = tmp_path / failure
    result = runner.invoke(app, ["train", "gan", "--data", "digits", "--out", str(run), "--epochs", "8", "--z-dim", "8", "--set", "net=mlp",
                                 "--set", "hidden=[64]", *FORCED[failure], "--quiet", "--sample-every", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0 and "WARNING: mode collapse" in result.output, result.output
    evaluation = json.loads((run / "evaluation.json").read_text())
    result = runner.invoke(app, ["diagnose", str(run), "--fail-on", "bad"])
    assert result.exit_code == 3 and "overall: bad" in result.output and "mode_collapse" in result.stderr, result.output
    diagnostics = json.loads((run / "diagnostics" / "diagnostics.json").read_text())
    quality = diagnostics["sample_quality"]
    assert quality == evaluation["sample_quality"]  # one seed, one split: the numbers evaluate reports
    assert diagnostics["overall"]["status"] == "bad" and "mode_collapse" in {p["code"] for p in diagnostics["overall"]["problems"]}
    page = (run / "diagnostics" / "report.html").read_text()
    assert page.index("Overall: bad") < page.index("Samples from the model")
    grid, beside = page.index('alt="prior samples"'), page.index("<th>sample quality</th>")
    assert grid < beside < page.index('alt="share of samples per class"') < page.index("Training: the two players")
    numbers = page[beside:page.index('alt="share of samples per class"')]
    for text in (f"{quality['frechet_distance']:.3f}", f"{quality['precision']:.3f}", f"{quality['recall']:.3f}",
                 f"{quality['coverage']['num_low_classes']} of 10"):
        assert text in numbers
    idata = az_from_netcdf(run / "diagnostics" / "idata.nc")
    assert idata.prior_predictive["x"].shape[:2] == (1, diagnostics["num_data"]) and idata.prior["z"].shape[-1] == 8


def test_lr_and_lr_patience_are_refused_for_a_gan_in_one_line(tmp_path):
    for option in (["--lr", "0.01"], ["--lr-patience", "3"]):
        result = runner.invoke(app, ["train", "gan", "--data", "digits", "--out", str(tmp_path / "gan"), "--epochs", "1", *option, "--quiet"])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
        assert "does not apply to model 'gan'" in result.stderr and ("g_lr" in result.stderr or "--lr" not in option)


def az_from_netcdf(path):
    from ppmodels.analysis.diagnostics import _arviz

    return _arviz().from_netcdf(path)
