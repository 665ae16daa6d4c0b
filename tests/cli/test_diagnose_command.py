import json

import numpy as np
from typer.testing import CliRunner

from ppmodels_cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_then_diagnose_end_to_end(tmp_path):
    run, out = tmp_path / "m1", tmp_path / "diag"
    result = invoke("train", "m1", "--data", "digits", "--labels", 50, "--out", run, "--epochs", 3, "--batch-size", 256,
                    "--hidden", "16", "--z-dim", 3, "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("diagnose", run, "--data", "digits", "--split", "valid", "--num-data", 30, "--particles", 25, "--out", out)
    assert result.exit_code == 0, result.output
    for name in ("idata.nc", "diagnostics.json", "report.html"):
        assert (out / name).is_file(), name
    assert "k-hat > 0.28" in result.output and "accuracy / ECE" in result.output and "IW log-likelihood" in result.output
    saved = json.loads((out / "diagnostics.json").read_text())
    assert saved["split"] == "valid" and saved["num_data"] == 30 and saved["particles"] == 25

    result = invoke("diagnose", run, "--num-data", 10, "--particles", 21, "--no-report")  # default folder RUN/diagnostics
    assert result.exit_code == 0, result.output
    assert (run / "diagnostics" / "diagnostics.json").is_file() and not (run / "diagnostics" / "report.html").exists()
    overall = json.loads((run / "diagnostics" / "diagnostics.json").read_text())["overall"]
    assert overall["status"] in ("good", "warning", "bad") and f"overall: {overall['status']}" in result.output
    for problem in overall["problems"]:
        assert set(problem) == {"code", "check", "severity", "value", "threshold", "message"}
    for level in ("warning", "bad"):  # exit 3 exactly when the verdict reaches the level; the files are written anyway
        result = invoke("diagnose", run, "--num-data", 10, "--particles", 21, "--no-report", "--fail-on", level)
        reached = ("good", "warning", "bad").index(overall["status"]) >= ("good", "warning", "bad").index(level)
        assert result.exit_code == (3 if reached else 0), result.output
    result = invoke("diagnose", run, "--num-data", 10, "--particles", 21, "--fail-on", "never")
    assert result.exit_code == 2 and "--fail-on" in result.output


def test_diagnose_errors_are_one_line(tmp_path):
    result = invoke("diagnose", tmp_path / "missing")
    assert result.exit_code == 2 and "does not exist" in result.stderr and "Traceback" not in result.output
    result = invoke("diagnose", tmp_path, "--particles", 20)
    assert result.exit_code == 2 and "21" in result.output


def test_diagnose_nuts_writes_the_gold_standard_for_ppca_and_refuses_other_models(tmp_path, monkeypatch):
    # points near a line in 4-D: NUTS on the 64 pixels of digits took 20 s, and tests/test_gold_standard.py checks
    # the sampler itself; here the command's plumbing is what is tested
    rng = np.random.default_rng(0)
    line = rng.normal(size=(200, 1)) @ np.array([[2.0, -1.0, 1.0, 0.5]]) + 0.5 * rng.normal(size=(200, 4))
    np.save(tmp_path / "line.npy", line.astype(np.float32))
    run, out = tmp_path / "ppca", tmp_path / "diag"
    result = invoke("train", "ppca", "--data", tmp_path / "line.npy", "--out", run, "--epochs", 20, "--z-dim", 1, "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())  # the fit against its closed form, in the run's summary
    assert summary["closed_form_angle_deg"] < 2 and 0 <= summary["closed_form_log_likelihood_gap"] < 0.01
    result = invoke("diagnose", run, "--num-data", 40, "--particles", 21, "--nuts", "--nuts-samples", 30, "--nuts-chains", 2, "--out", out)
    assert result.exit_code == 0, result.output
    gold = json.loads((out / "diagnostics.json").read_text())["gold_standard"]
    assert gold["num_data"] == 140 and gold["num_samples"] == 30 and gold["num_chains"] == 2  # like with like: all the fit saw
    assert set(gold["quantities"]) == {"sigma2", "eigenvalue_1"} and len(gold["subspace_angles_deg"]) == 1
    assert gold["num_fit_data"] == 140 and gold["angles_deg"]["fit_vs_closed_form"] < 2  # the fit's own training data
    assert all(q["rhat"] > 0 and q["ess"] > 0 and q["sd"] > 0 for q in gold["quantities"].values())
    assert "NUTS max R-hat" in result.output and "Gold standard: NUTS" in (out / "report.html").read_text()
    import arviz as az  # the NUTS draws are saved as InferenceData beside the report

    nuts = az.from_netcdf(str(out / "nuts.nc"))
    assert nuts.posterior["sigma2"].shape == (2, 30) and nuts.sample_stats["diverging"].shape == (2, 30)
    saved = json.loads((out / "diagnostics.json").read_text())
    assert saved["gold_standard"]["sampler"]["divergences"] >= 0 and "sampler" in saved["verdicts"]["nuts_sampler"]
    assert "NUTS divergences / E-BFMI" in result.output

    vae = tmp_path / "vae"
    assert invoke("train", "vae", "--data", "digits", "--out", vae, "--epochs", 1, "--hidden", "16", "--z-dim", 2, "--quiet").exit_code == 0
    result = invoke("diagnose", vae, "--num-data", 10, "--particles", 21, "--nuts")
    assert result.exit_code == 2 and "ppca and gmm only" in result.stderr and "Traceback" not in result.output

    import ppmodels.commands.diagnose as command  # the size guard: training data too large for NUTS are refused in one line

    monkeypatch.setattr(command, "NUTS_MAX_VALUES", 100)
    result = invoke("diagnose", run, "--num-data", 10, "--particles", 21, "--nuts", "--out", tmp_path / "refused", "--no-report")
    assert result.exit_code == 2 and "NUTS would run for hours" in result.stderr and "Traceback" not in result.output


def test_diagnose_nuts_on_a_gmm_relabels_to_the_svi_components(tmp_path):
    rng = np.random.default_rng(0)
    k = rng.integers(2, size=200)
    np.save(tmp_path / "blobs.npy", (np.array([[-3.0, 0.0], [3.0, 2.0]])[k] + 0.5 * rng.normal(size=(200, 2))).astype(np.float32))
    run, out = tmp_path / "gmm", tmp_path / "diag"
    result = invoke("train", "gmm", "--data", tmp_path / "blobs.npy", "--out", run, "--epochs", 50, "--set", "num_components=2", "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("diagnose", run, "--num-data", 60, "--particles", 21, "--nuts", "--nuts-samples", 40, "--nuts-chains", 2, "--out", out)
    assert result.exit_code == 0, result.output
    gold = json.loads((out / "diagnostics.json").read_text())["gold_standard"]
    assert gold["num_data"] == 140 and gold["num_samples"] == 40 and gold["num_chains"] == 2
    assert set(gold["quantities"]) == {"weight_0", "weight_1", *(f"{s}_{i}_{d}" for s in ("loc", "scale") for i in range(2) for d in range(2))}
    assert all(q["rhat"] > 0 and q["ess"] > 0 and q["sd"] > 0 for q in gold["quantities"].values())
    assert "relabelled to the SVI fit's" in gold["note"] and 0 <= gold["switched_draws"] <= 1
    assert "NUTS max R-hat" in result.output and "matching locs" in (out / "report.html").read_text()

    result = invoke("train", "gmm", "--data", "digits", "--out", tmp_path / "big", "--epochs", 1, "--set", "num_components=2", "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("diagnose", tmp_path / "big", "--num-data", 10, "--particles", 21, "--nuts")
    assert result.exit_code == 2 and "num_components x features <= 40" in result.stderr and "Traceback" not in result.output
