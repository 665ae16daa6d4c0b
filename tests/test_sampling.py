import hashlib

import numpy as np
import pytest
import torch

import ppmodels
from ppmodels.errors import ConfigError, DataError
from ppmodels.models import VAE
from ppmodels.analysis.inference_data import idata_arrays
from ppmodels.models import LabeledGenerator
from ppmodels.commands.sample import parse_labels, require_labels, sample_analogies, sample_conditional, sample_posterior, sample_prior
from ppmodels.infer import TrainConfig
from tests.helpers import assert_close_scaled


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    ppmodels.train("vae", "digits", out=out, train_config=TrainConfig(epochs=1, batch_size=256, patience=None),
                   model_options={"hidden": [16], "z_dim": 3}, progress=False, sample_every=0)
    return out


class ClassImages(VAE):
    """A stand-in for a model with y: class k decodes to images of constant value (k + 1) / (K + 1) plus z's noise."""

    num_classes = 4

    def sample(self, num, label=None, generator=None):
        noise = torch.rand(num, 1, generator=generator).numpy()[:, :, None, None] * 0.01
        return np.full((num, 1, 8, 8), (label + 1) / (self.num_classes + 1), dtype=np.float32) + noise

    def decode_with_labels(self, x, y=None):
        x = self.check_x(x)
        levels = (np.arange(self.num_classes) + 1) / (self.num_classes + 1)
        return np.broadcast_to(levels[None, :, None, None, None], (len(x), self.num_classes, 1, 8, 8)).copy()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_posterior_netcdf_and_npz_hold_the_same_arrays(vae_run, tmp_path):
    import arviz as az

    nc = sample_posterior(vae_run, "digits", tmp_path / "p.nc", num_data=6, draws=5, seed=3)
    npz = sample_posterior(vae_run, "digits", tmp_path / "p.npz", num_data=6, draws=5, seed=3)
    idata = az.from_netcdf(nc)
    assert set(idata.groups()) >= {"posterior", "posterior_predictive", "log_likelihood", "sample_stats", "observed_data"}
    assert idata.posterior["z"].dims == ("chain", "draw", "datum", "z_dim") and idata.posterior["z"].shape == (1, 5, 6, 3)
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "datum", "channel", "row", "col")
    assert idata.observed_data["x"].shape == (6, 1, 8, 8)
    expected = idata_arrays(idata)
    with np.load(npz) as arrays:
        assert sorted(arrays.files) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(arrays[key], value, err_msg=key)
        assert list(arrays["posterior/z.dims"]) == ["chain", "draw", "datum", "z_dim"]


@pytest.mark.parametrize("suffix", [".nc", ".npz"])
def test_posterior_same_seed_gives_identical_bytes(vae_run, tmp_path, suffix):
    first = sample_posterior(vae_run, "digits", tmp_path / f"a{suffix}", num_data=4, draws=3, seed=7)
    again = sample_posterior(vae_run, "digits", tmp_path / f"b{suffix}", num_data=4, draws=3, seed=7)
    other = sample_posterior(vae_run, "digits", tmp_path / f"c{suffix}", num_data=4, draws=3, seed=8)
    assert digest(first) == digest(again)
    assert digest(first) != digest(other)


def test_posterior_uses_the_chosen_split_and_records_dataset_indices(vae_run, tmp_path):
    import arviz as az

    dataset = ppmodels.load_dataset("digits")
    idata = az.from_netcdf(sample_posterior(vae_run, "digits", tmp_path / "p.nc", num_data=3, draws=2, split="test"))
    np.testing.assert_array_equal(idata.observed_data["datum"].values, dataset.splits["test"][:3])
    np.testing.assert_array_equal(idata.observed_data["x"].values, dataset.x[dataset.splits["test"][:3]])


def test_posterior_refuses_data_of_another_shape(vae_run, tmp_path):
    np.savez(tmp_path / "ten.npz", x=np.random.default_rng(0).random((20, 10)))
    with pytest.raises(DataError, match="10 features"):
        sample_posterior(vae_run, f"npz:{tmp_path}/ten.npz", tmp_path / "p.nc")


def test_prior_png_same_seed_same_bytes(vae_run, tmp_path):
    assert digest(sample_prior(vae_run, 9, tmp_path / "a.png", seed=1)) == digest(sample_prior(vae_run, 9, tmp_path / "b.png", seed=1))


def test_models_without_y_are_refused_for_label_modes(vae_run, tmp_path):
    assert not isinstance(ppmodels.load(vae_run), LabeledGenerator)
    with pytest.raises(ConfigError, match="--label needs a model with a class variable y"):
        sample_conditional(vae_run, "all", tmp_path / "c.png")
    with pytest.raises(ConfigError, match="--style-from needs a model with a class variable y"):
        sample_analogies(vae_run, "digits", tmp_path / "a.png")


def test_parse_labels():
    assert parse_labels("all", 3) == [0, 1, 2] and parse_labels("2", 3) == [2]
    for bad in ("3", "-1", "two"):
        with pytest.raises(ConfigError, match="--label"):
            parse_labels(bad, 3)


def test_conditional_rows_follow_the_classes(tmp_path):
    model = require_labels(ClassImages(x_shape=[1, 8, 8], z_dim=2, hidden=[4]), "--label")
    every = np.load(sample_conditional(model, "all", tmp_path / "all.npy", num=5, seed=0))
    assert every.shape == (4, 5, 1, 8, 8)
    np.testing.assert_allclose(every.mean(axis=(1, 2, 3, 4)), (np.arange(4) + 1) / 5, atol=0.01)
    assert np.load(sample_conditional(model, 2, tmp_path / "two.npy", num=5)).shape == (5, 1, 8, 8)
    grid = sample_conditional(model, "all", tmp_path / "all.png", num=5, seed=0)
    assert digest(grid) == digest(sample_conditional(model, "all", tmp_path / "again.png", num=5, seed=0))


def test_analogies_put_the_input_first_then_one_column_per_class(tmp_path):
    import matplotlib.image

    model = ClassImages(x_shape=[1, 8, 8], z_dim=2, hidden=[4])
    decoded = np.load(sample_analogies(model, "digits", tmp_path / "a.npy", num_data=3))
    assert decoded.shape == (3, 4, 1, 8, 8)
    grid = matplotlib.image.imread(sample_analogies(model, "digits", tmp_path / "a.png", num_data=3, zoom=1))
    # 3 rows and 1 + 4 columns of 8x8 tiles with 1-pixel gaps
    assert grid.shape[:2] == (3 * 9 + 1, 5 * 9 + 1)


def test_png_needs_image_data(tmp_path):
    model = ClassImages(x_shape=[64], z_dim=2, hidden=[4])
    with pytest.raises(DataError, match="PNG needs image data"):
        sample_conditional(model, 0, tmp_path / "c.png")


@pytest.mark.numerical
def test_m2_label_interface_matches_its_networks():
    from ppmodels.models import M2

    m2 = M2(x_shape=[1, 8, 8], num_classes=4, z_dim=3, hidden=[8]).eval()
    assert isinstance(m2, LabeledGenerator) and m2.num_classes == 4
    drawn = m2.sample(5, label=2, generator=torch.Generator().manual_seed(0))
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    logits = m2.decoder(z, torch.nn.functional.one_hot(torch.full((5,), 2), 4).float())
    assert_close_scaled(drawn, logits.sigmoid(), rel=1e-5)
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([0, 3, 1])
    style = m2.encoder(m2.features(x), torch.nn.functional.one_hot(y, 4).float())[0]
    every = m2.decode_with_labels(x, y)
    assert every.shape == (3, 4, 1, 8, 8)
    for k in range(4):
        expected = m2.decoder(style, torch.nn.functional.one_hot(torch.full((3,), k), 4).float()).sigmoid()
        assert_close_scaled(every[:, k], expected, rel=1e-5)
    predicted = torch.as_tensor(m2.predict(x))
    assert_close_scaled(m2.decode_with_labels(x), m2.decode_with_labels(x, predicted), rel=1e-5)
    with pytest.raises(ConfigError, match="out of range"):
        m2.sample(2, label=4)


@pytest.mark.numerical
def test_m1m2_analogies_go_through_both_layers():
    from ppmodels.models import M1M2

    model = M1M2(x_shape=[1, 8, 8], num_classes=3, z1_dim=4, z2_dim=2, m1_hidden=[8], m2_hidden=[8]).eval()
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([1, 2])
    every = model.decode_with_labels(x, y)
    assert every.shape == (2, 3, 1, 8, 8)
    z1 = torch.from_numpy(model.encode(x)[0])
    z2 = model.m2.encoder(model.m2.features(z1), torch.nn.functional.one_hot(y, 3).float())[0]
    z1_given_class_2 = model.m2.decoder(z2, torch.nn.functional.one_hot(torch.full((2,), 2), 3).float())[:, 0]  # Gaussian loc
    assert_close_scaled(every[:, 2], model.m1.decode(z1_given_class_2.detach()), rel=1e-5)


def test_zoom_scales_png_grids(tmp_path):
    import matplotlib.image

    model = ClassImages(x_shape=[1, 8, 8], z_dim=2, hidden=[4])
    plain = matplotlib.image.imread(sample_conditional(model, "all", tmp_path / "a.png", num=2, zoom=1))
    zoomed = matplotlib.image.imread(sample_conditional(model, "all", tmp_path / "b.png", num=2, zoom=3))
    assert zoomed.shape[:2] == (plain.shape[0] * 3, plain.shape[1] * 3)
    np.testing.assert_array_equal(zoomed[::3, ::3], plain)


def test_default_grids_are_readable_with_a_row_per_class(tmp_path):
    """``--label all`` without --num or --zoom: 10 samples per class, one class per row, each 8x8 image drawn 64 px tall
    (it was a 577 x 91 px strip of 64 per class at 1:1); the classes are told apart by their rows' grey levels."""
    import matplotlib.image

    model = ClassImages(x_shape=[1, 8, 8], z_dim=2, hidden=[4])
    grid = matplotlib.image.imread(ppmodels.sample(model, tmp_path / "all.png", label="all"))
    cell = 9 * 8  # an 8x8 image and its one-pixel border, zoomed 8 times
    assert grid.shape[:2] == (4 * cell + 8, 10 * cell + 8)
    rows = [grid[8 + r * cell: 8 + r * cell + 64, 8: 8 + 64, 0].mean() for r in range(4)]
    np.testing.assert_allclose(rows, [(k + 1) / 5 for k in range(4)], atol=0.02)
    prior = matplotlib.image.imread(ppmodels.sample(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[4]).eval(), tmp_path / "prior.png"))
    assert prior.shape[:2] == (8 * cell + 8, 8 * cell + 8)  # 64 samples, 8 x 8


def test_readable_zoom_draws_images_about_64_px_within_1600_px():
    from ppmodels.plots import readable_zoom

    assert readable_zoom(8, 73) == 8  # digits: 8 px -> 64 px
    assert readable_zoom(28, 233) == 3  # MNIST: 28 px -> 84 px
    assert readable_zoom(8, 577) == 2  # a 64-wide row stays within 1600 px
    assert readable_zoom(64, 2000) == 1  # never below 1:1
