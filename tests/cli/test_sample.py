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


LABELED = {
    "m2": ["--hidden", "16", "--z-dim", "3"],
    "m1m2": ["--set", "z1_dim=6", "--set", "z2_dim=3", "--set", "m1_hidden=[16]", "--set", "m2_hidden=[16]"],
}


@pytest.fixture(scope="module", params=sorted(LABELED))
def labeled_run(request, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / request.param
    result = invoke("train", request.param, "--data", "digits", "--labels", 50, "--out", run, "--epochs", 2, "--batch-size", 256,
                    "--quiet", "--sample-every", 0, *LABELED[request.param])
    assert result.exit_code == 0, result.output
    return run


def test_every_mode_on_models_with_y(labeled_run, tmp_path):
    import arviz as az
    import matplotlib.image

    def run_ok(*args):
        result = invoke("sample", labeled_run, *args)
        assert result.exit_code == 0, result.output

    run_ok("--num", 8, "--out", tmp_path / "prior.png")
    run_ok("--label", "all", "--num", 6, "--out", tmp_path / "all.npy")
    assert np.load(tmp_path / "all.npy").shape == (10, 6, 1, 8, 8)
    run_ok("--label", "all", "--num", 6, "--out", tmp_path / "all.png")
    assert matplotlib.image.imread(tmp_path / "all.png").shape[:2] == (8 * (10 * 9 + 1), 8 * (6 * 9 + 1))  # a row per class, 8x8 pixels drawn 64 px
    run_ok("--label", 7, "--num", 5, "--out", tmp_path / "seven.npy")
    assert np.load(tmp_path / "seven.npy").shape == (5, 1, 8, 8)
    run_ok("--style-from", "digits", "--num-data", 4, "--out", tmp_path / "analogies.png")
    assert matplotlib.image.imread(tmp_path / "analogies.png").shape[:2] == (8 * (4 * 9 + 1), 8 * (11 * 9 + 1))  # input + 10 classes
    run_ok("--style-from", "digits", "--num-data", 4, "--out", tmp_path / "analogies.npy")
    assert np.load(tmp_path / "analogies.npy").shape == (4, 10, 1, 8, 8)
    run_ok("--posterior", "--data", "digits", "--num-data", 4, "--draws", 3, "--out", tmp_path / "post.nc")
    posterior = az.from_netcdf(tmp_path / "post.nc").posterior
    assert "y" in posterior and posterior["y"].shape[:3] == (1, 3, 4)
    assert ("z2" in posterior and "z1" in posterior) if labeled_run.name == "m1m2" else "z" in posterior


def test_label_modes_are_reproducible_by_seed(labeled_run, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert invoke("sample", labeled_run, "--label", "all", "--num", 3, "--seed", seed, "--out", tmp_path / f"{name}.png").exit_code == 0
        assert invoke("sample", labeled_run, "--style-from", "digits", "--num-data", 3, "--out", tmp_path / f"s{name}.png").exit_code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes() != (tmp_path / "c.png").read_bytes()
    assert (tmp_path / "sa.png").read_bytes() == (tmp_path / "sb.png").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--label", "10"], "--label 10 is out of range: the model has classes 0..9"),
    (["--label", "-1"], "out of range"),
    (["--label", "five"], "is not a class number"),
    (["--style-from", "TEN"], "10 features"),
])
def test_bad_label_input_gives_one_line_and_exit_2(labeled_run, tmp_path, ten_features, args, message):
    args = [ten_features if a == "TEN" else a for a in args]
    result = runner.invoke(app, ["sample", str(labeled_run), *args, "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
