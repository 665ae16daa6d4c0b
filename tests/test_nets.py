"""Shared networks: linear maps, and convolutional encoders/decoders for images of any number of channels."""

import numpy as np
import pytest
import torch

from ppmodels.data import from_arrays, prepare_data
from ppmodels.errors import ConfigError
from ppmodels.models import GMVAE, VAE
from ppmodels.nets import ConvDecoder, ConvFeatures, MLP, broadcast_cat, precision
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit
from ppmodels.runs import save_model
from tests.helpers import assert_close_scaled


@pytest.mark.parametrize("x_shape", [(1, 28, 28), (5, 64, 64), (1, 8, 8), (3, 7, 9)])
def test_conv_encoder_decoder_shapes_with_leading_dims(x_shape):
    features = ConvFeatures(x_shape, channels=[4, 8])
    decoder = ConvDecoder(3, [16], x_shape, channels=[4, 8])
    x = torch.rand(2, 3, *x_shape)
    assert features(x).shape == (2, 3, features.out_dim)
    assert decoder(torch.randn(2, 3, 3)).shape == (2, 3, *x_shape)
    # an enumerated one-hot with a leading dim broadcasts against a batch of codes, as in M2's decoder
    assert decoder(torch.randn(6, 2), torch.eye(1).expand(4, 1, 1)).shape == (4, 6, *x_shape)


def test_linear_mlp_is_one_affine_map():
    net = MLP(5, [], 3, "relu")
    assert len(net.net) == 1 and isinstance(net.net[0], torch.nn.Linear)
    assert MLP(5, [4], 3, "linear")(torch.randn(2, 5)).shape == (2, 3)


@pytest.mark.parametrize("cls", [VAE, GMVAE])
def test_conv_models_train_on_random_five_band_cutouts(cls):
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(24, 5, 64, 64)).astype(np.float32)
    data = prepare_data(from_arrays("cutouts", x))
    model = cls(x_shape=[5, 64, 64], likelihood="gaussian", net="conv", channels=[4, 8], hidden=[16], z_dim=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, data, TrainConfig(epochs=2, batch_size=8, lr=1e-3, patience=None))
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert {"features", "encoder", "decoder"} <= changed
    assert np.isfinite(model.elbo_per_datum(data.valid))
    assert model.transform(x[:3]).shape == (3, 3)
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 5, 64, 64)


def test_conv_vae_on_mnist_sized_digits_and_save_load(tmp_path):
    import ppmodels

    x = np.random.default_rng(0).random((12, 1, 28, 28)).astype(np.float32)
    model = VAE(x_shape=[1, 28, 28], net="conv", channels=[4, 8], hidden=[16], z_dim=2)
    fit(model, from_arrays("tiny", x), TrainConfig(epochs=1, batch_size=6, patience=None))
    save_model(model, tmp_path / "run")
    again = ppmodels.load(tmp_path / "run")
    assert np.allclose(again.reconstruct(x), model.reconstruct(x))


def test_conv_needs_image_data():
    with pytest.raises(ConfigError, match="needs image data"):
        VAE(x_shape=[64], net="conv")
    with pytest.raises(ConfigError, match="option net must be one of mlp, conv, got .resnet."):
        VAE(x_shape=[1, 8, 8], net="resnet")


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_conv_m2_trains_on_labeled_five_band_cutouts(likelihood):
    from ppmodels.models import M2

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((30, 5, 64, 64)).astype(np.float32)
    data = prepare_data(from_arrays("cutouts", x, rng.integers(0, 2, 30), likelihood=likelihood), num_labels=6)
    model = M2(x_shape=[5, 64, 64], likelihood=likelihood, num_classes=2, net="conv", channels=[4, 8], hidden=[16], z_dim=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, data, TrainConfig(epochs=1, batch_size=8, lr=1e-3, patience=None))
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert {"x_features", "classifier", "encoder", "decoder"} <= changed
    assert model.predict_proba(x[:4]).shape == (4, 2)
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 5, 64, 64)
    assert model.iw_log_likelihood(torch.from_numpy(x[:2]), num_particles=2).shape == (2,)


@pytest.mark.numerical
@pytest.mark.parametrize("hidden", [[], [6, 4]])
def test_mlp_of_several_inputs_equals_the_mlp_of_their_broadcast_concatenation(hidden):
    """The first layer meets each input on its own columns (an image batch once, not once per class), same result."""
    torch.manual_seed(0)
    net = MLP(7 + 3, hidden, 5, "softplus")
    x, every_class = torch.randn(4, 7), torch.eye(3).unsqueeze(1)  # (B, D) against (K, 1, K)
    out = net(x, every_class)
    assert out.shape == (3, 4, 5)
    assert_close_scaled(out, net.net(broadcast_cat(x, every_class)), rel=1e-5)
    y = torch.eye(3)[torch.tensor([0, 2, 1, 1])]
    assert_close_scaled(net(x, y), net.net(torch.cat([x, y], -1)), rel=1e-5)


@pytest.mark.numerical
def test_bf16_precision_runs_the_products_in_bfloat16_and_hands_back_float32():
    """Inside ``precision("bf16")`` a layer is the bfloat16 product (inputs and weights rounded, the output rounded
    once), its output comes back float32 for the likelihoods, and outside the block nothing changes."""
    torch.manual_seed(0)
    net = MLP(7, [], 5, "softplus")
    x = torch.randn(4, 7)
    layer = net.net[0]
    by_hand = torch.nn.functional.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16()).float()
    with precision("bf16"):
        out = net(x)
    assert out.dtype == torch.float32
    assert torch.equal(out, by_hand)
    assert not torch.equal(out, net(x))  # rounded, so not the float32 product ...
    assert_close_scaled(out, net(x), rel=2e-2)  # ... but close to it
    assert torch.equal(net(x), layer(x))  # the block left nothing behind


@pytest.mark.parametrize("which", ["mlp", "conv"])
def test_bf16_precision_keeps_weights_and_gradients_float32(which):
    torch.manual_seed(0)
    if which == "mlp":
        net, x = MLP(10, [8], 3, "softplus"), torch.randn(6, 10)
    else:
        features = ConvFeatures((2, 8, 8), [4, 4], "relu")
        net, x = torch.nn.Sequential(features, ConvDecoder(features.out_dim, [6], (2, 8, 8), [4, 4], "relu")), torch.randn(6, 2, 8, 8)
    with precision("bf16"):
        out = net(x)
        assert out.dtype == torch.float32
        assert out.shape == ((6, 3) if which == "mlp" else x.shape)
        (out ** 2).sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="unknown precision 'fp16'; use one of fp32, bf16"):
        with precision("fp16"):
            pass
