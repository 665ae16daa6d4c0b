"""``ppmodels train gan`` and ``ppmodels evaluate`` on a GAN: no ELBO, the yardstick instead, and a failed run said so."""

import json

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
