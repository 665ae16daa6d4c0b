"""``ppmodels sample --interpolate`` and ``--analogy``: the decoded codes against the codes computed directly."""

import matplotlib.image
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ppmodels.commands.sample import parse_analogy, sample
from ppmodels.errors import ConfigError
from ppmodels.models import GAN, PPCA
from ppmodels_cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def gan():
    return GAN(x_shape=[1, 8, 8], likelihood="bernoulli", z_dim=4, channels=[8, 16], seed=0).eval()


def test_analogy_decodes_the_mean_codes_combined(gan, tmp_path):
    out = sample(gan, tmp_path / "a.npy", analogy="1,2 - 3 + 5,6,7", num=16, seed=3)
    codes = torch.randn(16, 4, generator=torch.Generator().manual_seed(3)).numpy()
    result = codes[[1, 2]].mean(0) - codes[3] + codes[[5, 6, 7]].mean(0)
    got, expected = np.load(out), gan.decode(result[None])
    assert got.shape == (8, 1, 8, 8)
    assert np.abs(got[0] - expected[0]).max() <= 1e-6 * np.linalg.norm(expected)
    assert np.abs(got[1:] - got[0]).max() > 1e-6 * np.linalg.norm(expected)  # the variations around it differ


def test_interpolation_rows_run_from_one_prior_draw_to_another(gan, tmp_path):
    images = np.load(sample(gan, tmp_path / "i.npy", interpolate=True, num=3, steps=5, seed=1))
    codes = torch.randn(6, 4, generator=torch.Generator().manual_seed(1)).numpy()
    assert images.shape == (3, 5, 1, 8, 8)
    for ends, code in ((images[:, 0], codes[:3]), (images[:, -1], codes[3:])):
        expected = gan.decode(code)
        assert np.abs(ends - expected).max() <= 1e-6 * np.linalg.norm(expected)
    middle = gan.decode(0.5 * (codes[:3] + codes[3:]))
    assert np.abs(images[:, 2] - middle).max() <= 1e-6 * np.linalg.norm(middle)


@pytest.mark.parametrize("text", ["1,2,x", "1,2-", "64", "", "1,,2"])
def test_bad_analogies_are_refused(text):
    with pytest.raises(ConfigError):
        parse_analogy(text, 64)
    assert parse_analogy("-1 + 2,3", 64) == [(-1, [1]), (1, [2, 3])]


def test_models_without_codes_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="--interpolate needs a model that decodes"):
        sample(PPCA(x_shape=[4], z_dim=1), tmp_path / "x.npy", interpolate=True)


def test_cli_modes_on_a_trained_gan(tmp_path):
    run = tmp_path / "gan"
    result = runner.invoke(app, ["train", "gan", "--data", "digits", "--out", str(run), "--epochs", "1", "--batch-size", "256",
                                 "--z-dim", "4", "--set", "channels=[8,16]", "--quiet", "--sample-every", "1"])
    assert result.exit_code == 0, result.output
    assert (run / "samples" / "epoch_0001.png").is_file()
    for args, ncol in ((["--num", "8"], None), (["--interpolate", "--num", "2", "--steps", "6"], 6), (["--analogy", "0,1 - 2 + 3"], 8)):
        result = runner.invoke(app, ["sample", str(run), "--out", str(tmp_path / "g.png"), "--zoom", "1", "--overwrite", *args])
        assert result.exit_code == 0, result.output
        if ncol is not None:
            assert matplotlib.image.imread(tmp_path / "g.png").shape[1] == ncol * 9 + 1
    result = runner.invoke(app, ["sample", str(run), "--out", str(tmp_path / "b.png"), "--analogy", "0,1 - 99"])
    assert result.exit_code == 2 and "sample numbers 0..63" in result.output
