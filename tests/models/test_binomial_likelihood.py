import pyro.distributions as dist
import pytest
import torch

from ppmodels.data import prepare_data
from ppmodels.errors import ConfigError
from ppmodels.models import M2, VAE, ModelConfig
from ppmodels.models.vae import BinomialFraction, observation_dist
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit
from tests.helpers import assert_close_scaled


@pytest.mark.numerical
def test_binomial_fraction_scores_the_counts():
    logits = torch.randn(4, 3)
    x = torch.randint(0, 17, (4, 3)) / 16
    expected = dist.Binomial(total_count=16, logits=logits).log_prob(x * 16)
    assert_close_scaled(BinomialFraction(total_count=16, logits=logits).log_prob(x), expected, rel=1e-6)
    d = observation_dist(logits, "binomial:16", None, 1)
    assert_close_scaled(d.log_prob(x), expected.sum(-1), rel=1e-6)
    assert torch.allclose(d.base_dist.mean, logits.sigmoid())
    draws = d.sample((2000,))
    assert draws.max() <= 1 and torch.allclose(draws.mean(0), logits.sigmoid(), atol=0.02)  # fractions k/16, mean p
    # N = 1 is the Bernoulli on binary data
    b = torch.bernoulli(torch.full((4, 3), 0.5))
    assert_close_scaled(observation_dist(logits, "binomial:1", None, 1).log_prob(b), observation_dist(logits, "bernoulli", None, 1).log_prob(b), rel=1e-6)


@pytest.mark.parametrize("likelihood", ["binomial", "binomial:0", "binomial:x", "poisson"])
def test_bad_likelihoods_are_refused(likelihood):
    with pytest.raises(ConfigError, match="unknown likelihood"):
        VAE(x_shape=[4], likelihood=likelihood)


def test_models_without_a_binomial_decoder_refuse_it():
    with pytest.raises(ConfigError, match="use one of bernoulli, gaussian"):
        ModelConfig(x_shape=[4], likelihood="binomial:16")


@pytest.mark.parametrize("cls, options", [(VAE, {"z_dim": 2, "hidden": [16]}), (M2, {"z_dim": 2, "hidden": [16]})])
def test_digits_as_counts_of_16_train(digits, cls, options):
    data = prepare_data(digits, num_labels=50)
    model = cls(cls.config_from_data(digits, likelihood="binomial:16", **options))
    start = model.elbo_per_datum(data.valid)
    fit(model, data, TrainConfig(epochs=3, batch_size=200, lr=3e-3, patience=None))
    assert model.elbo_per_datum(data.valid) > start
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).max() <= 1
