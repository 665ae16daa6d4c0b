import numpy as np
import pytest
from typer.testing import CliRunner

from ppmodels_cli.main import app

runner = CliRunner()
FAST = ["--epochs", "1", "--batch-size", "256", "--hidden", "16", "--z-dim", "3", "--quiet", "--sample-every", "0"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "vae"
    result = invoke("train", "vae", "--data", "digits", "--out", run, *FAST)
    assert result.exit_code == 0, result.output
    return run


@pytest.mark.parametrize("suffix", [".nc", ".npz"])
def test_posterior_is_reproducible_by_seed(vae_run, tmp_path, suffix):
    paths = [tmp_path / f"{name}{suffix}" for name in "abc"]
    for path, seed in zip(paths, (5, 5, 6)):
        result = invoke("sample", vae_run, "--posterior", "--data", "digits", "--num-data", 4, "--draws", 3, "--seed", seed, "--out", path)
        assert result.exit_code == 0, result.output
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()


def test_posterior_npz_shapes(vae_run, tmp_path):
    result = invoke("sample", vae_run, "--posterior", "--data", "digits", "--num-data", 4, "--draws", 3, "--out", tmp_path / "p.npz")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "p.npz") as arrays:
        assert arrays["posterior/z"].shape == (1, 3, 4, 3)
        assert arrays["posterior_predictive/x"].shape == (1, 3, 4, 1, 8, 8)


@pytest.fixture(scope="module")
def ten_features(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ten.npz"
    np.savez(path, x=np.random.default_rng(0).random((30, 10)))
    return f"npz:{path}"


@pytest.mark.parametrize("args, message", [
    (["--label", "3"], "--label needs a model with a class variable y"),
    (["--label", "all"], "--label needs a model with a class variable y"),
    (["--style-from", "digits"], "--style-from needs a model with a class variable y"),
    (["--posterior"], "--posterior needs --data SPEC"),
    (["--posterior", "--data", "TEN", "--out", "p.nc"], "10 features"),
    (["--style-from", "TEN"], "--style-from needs a model with a class variable y"),
    (["--posterior", "--label", "1", "--data", "digits"], "separate modes"),
    (["--data", "digits"], "--data applies to --posterior"),
    (["--posterior", "--data", "digits"], "must end in .nc"),
])
def test_bad_input_gives_one_line_and_exit_2(vae_run, tmp_path, ten_features, args, message):
    args = [ten_features if a == "TEN" else a for a in args]
    args = args if "--out" in args else [*args, "--out", "s.png"]
    args[args.index("--out") + 1] = str(tmp_path / args[args.index("--out") + 1])
    result = runner.invoke(app, ["sample", str(vae_run), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
