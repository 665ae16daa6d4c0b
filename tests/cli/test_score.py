import numpy as np
from typer.testing import CliRunner

from ppmodels_cli.main import app

runner = CliRunner()
FAST = ["--epochs", "2", "--batch-size", "256", "--hidden", "16", "--z-dim", "3", "--quiet", "--sample-every", "0"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_score_writes_npz_and_csv(tmp_path):
    run = tmp_path / "vae"
    assert invoke("train", "vae", "--data", "digits", "--out", run, *FAST).exit_code == 0
    result = invoke("score", run, "--data", "digits", "--split", "test", "--out", tmp_path / "s.npz", "--num-particles", "5",
                    "--reference-size", "100")
    assert result.exit_code == 0, result.output
    scores = np.load(tmp_path / "s.npz")
    assert scores["log_px"].shape == scores["log_px_percentile"].shape == scores["y"].shape == (360,)
    assert np.isfinite(scores["log_px"]).all() and ((0 <= scores["log_px_percentile"]) & (scores["log_px_percentile"] <= 100)).all()
    result = invoke("score", run, "--data", "digits", "--split", "test", "--out", tmp_path / "s.csv", "--num-particles", "5",
                    "--reference-size", "100")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "log_px,log_px_percentile,y"


def test_gmm_on_latents_trains_and_samples_from_the_cli(tmp_path):
    run = tmp_path / "vae"
    assert invoke("train", "vae", "--data", "digits", "--out", run, *FAST).exit_code == 0
    gmm = tmp_path / "gmm"
    result = invoke("train", "gmm", "--data", f"latents:{run}", "--out", gmm, "--epochs", "2", "--set", "num_components=4", "--quiet")
    assert result.exit_code == 0, result.output
    assert "test_cluster_accuracy" in result.output
    result = invoke("sample", gmm, "--out", tmp_path / "g.png", "--num", "8")
    assert result.exit_code == 0 and (tmp_path / "g.png").is_file(), result.output


def test_score_errors_are_one_line(tmp_path):
    result = invoke("score", tmp_path / "missing", "--data", "digits", "--out", tmp_path / "s.npz")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = invoke("train", "gmm", "--data", "latents:", "--out", tmp_path / "g", "--quiet")
    assert result.exit_code == 2 and "names no run folder" in result.stderr


def test_conv_and_denoising_options_from_the_cli(tmp_path):
    result = invoke("train", "gmvae", "--data", "digits", "--out", tmp_path / "g", "--net", "conv", "--corruption", "mask",
                    "--noise-level", "0.2", "--set", "channels=[4,8]", "--set", "num_components=3", *FAST)
    assert result.exit_code == 0, result.output
    config = __import__("json").loads((tmp_path / "g" / "config.json").read_text())["model_config"]
    assert config["net"] == "conv" and config["corruption"] == "mask" and config["noise_level"] == 0.2
    result = invoke("train", "ppca", "--data", "digits", "--out", tmp_path / "p", "--net", "conv", "--quiet")
    assert result.exit_code == 2 and "do not apply to model 'ppca'" in result.stderr
