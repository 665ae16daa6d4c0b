import json

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
    assert "k-hat > 0.7" in result.output and "accuracy / ECE" in result.output and "IW log-likelihood" in result.output
    saved = json.loads((out / "diagnostics.json").read_text())
    assert saved["split"] == "valid" and saved["num_data"] == 30 and saved["particles"] == 25

    result = invoke("diagnose", run, "--num-data", 10, "--particles", 21, "--no-report")  # default folder RUN/diagnostics
    assert result.exit_code == 0, result.output
    assert (run / "diagnostics" / "diagnostics.json").is_file() and not (run / "diagnostics" / "report.html").exists()


def test_diagnose_errors_are_one_line(tmp_path):
    result = invoke("diagnose", tmp_path / "missing")
    assert result.exit_code == 2 and "does not exist" in result.stderr and "Traceback" not in result.output
    result = invoke("diagnose", tmp_path, "--particles", 20)
    assert result.exit_code == 2 and "21" in result.output
