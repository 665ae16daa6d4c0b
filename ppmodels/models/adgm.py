"""The auxiliary deep generative model (ADGM, Maaloe et al. 2016): M2 with an auxiliary latent a in the guide."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from ..config import Field, IntList, config_dataclass
from ..nets import GaussianEncoder
from ..registry import register_model
from .base import PPModel
from .m2 import M2, M2Config


@config_dataclass
class ADGMConfig(M2Config):
    """Every option is M2's (:class:`~ppmodels.models.m2.M2Config`, the same meaning and defaults) and ``a_dim``, except
    the sizes, which default to the paper's for MNIST: ``z_dim=100`` and ``hidden=[500, 500]`` for every network."""

    z_dim: int = Field(100, ge=1, description="size of the style latent z (the paper's 100 for MNIST).")
    hidden: IntList = Field(default_factory=lambda: [500, 500], description="hidden layer sizes of every network (the paper's 500-500).")
    a_dim: int = Field(100, ge=1, description="size of the auxiliary latent a (the paper's 100 for MNIST).")


@register_model("adgm")
class ADGM(M2):
    """ADGM: M2's generative story with an auxiliary latent a that makes the guide more expressive.

    Generative story, for each datum::

        y ~ Categorical(pi)                 (uniform, or the labeled class frequencies)
        z ~ Normal(0, I)                    (z_dim)
        x ~ p(x | y, z)                     (as in M2)
        a ~ Normal(mu(x, y, z), sigma(x, y, z))   (a_dim; the auxiliary variable)

    Guide: ``a ~ q(a | x)``, ``y ~ q(y | a, x)`` (enumerated in parallel for unlabeled data, observed for labeled
    data) and ``z ~ q(z | a, y, x)``, all Gaussian but y. Adding a leaves the marginal p(x, y, z) unchanged, while
    the marginal ``q(y, z | x) = int q(a|x) q(y|a,x) q(z|a,y,x) da`` is a continuous mixture, richer than M2's guide.
    The objective is M2's ``J`` (same ``labeled_weight``, ``alpha``, batches and ``poutine.scale`` weights) with
    the ELBOs over ``(a, z)`` and the classification term ``alpha * E_q(a|x)[-log q(y | a, x)]``, itself a Pyro pair.

    Sample sites: ``y`` (one-hot), ``z``, ``x``, ``a``, in the plate ``data``. Prediction: ``predict_proba(x)`` is
    ``q(y | a, x)`` at ``a = E[a | x]`` (deterministic). Importance weights sample every guide site (a, y, z).

    Options: the fields of :class:`ADGMConfig` (``ppmodels models adgm``), each described once there.

    Example::

        data = prepare_data(load_dataset("digits"), num_labels=50)
        adgm = ADGM(x_shape=[1, 8, 8], z_dim=10, a_dim=10, hidden=[64]).fit(data, TrainConfig(epochs=1, min_epoch_steps=0))   # real use: epochs=100
        adgm.predict(data.test.x)                     # argmax q(y | E[a|x], x)

    Reference: L. Maaloe, C. K. Sonderby, S. K. Sonderby, O. Winther, "Auxiliary deep generative models", ICML 2016,
    section 3.1 (eqs. 7-10).
    """

    Config = ADGMConfig
    config: ADGMConfig

    def __init__(self, config: ADGMConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        features = self.x_features.out_dim
        self.a_encoder = GaussianEncoder(features, c.hidden, c.a_dim, c.activation)  # q(a | x)
        self.a_decoder = GaussianEncoder(features + c.num_classes + c.z_dim, c.hidden, c.a_dim, c.activation)  # p(a | x, y, z)

    def auxiliary_dim(self) -> int:
        return self.config.a_dim

    def a_posterior(self, x: torch.Tensor) -> dist.Distribution:
        """q(a | x), batch shape ``(N,)``."""
        return dist.Normal(*self.a_encoder(self.features(x))).to_event(1)

    def point_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The features of ``x`` and ``E[a | x]``: what ``predict``, ``style`` and the analogies condition on."""
        features = self.features(x)
        return features, self.a_encoder(features)[0]

    def guide_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``a ~ q(a | x)`` (site ``a``), then the features of ``x`` and ``a`` for q(y | a, x) and q(z | a, y, x)."""
        return self.features(x), pyro.sample("a", self.a_posterior(x))

    def model_auxiliary(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> None:
        """``a ~ p(a | x, y, z)``; ``y`` and ``z`` may carry the enumeration dimension, which broadcasts."""
        pyro.sample("a", dist.Normal(*self.a_decoder(self.features(x), y, z)).to_event(1))

    def classifier_model(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The classification term ``E_q(a|x)[log q(y | a, x)]`` as a Pyro pair: ``a`` is drawn from q(a | x) in model
        and guide alike, so their log-densities cancel exactly and the ELBO is ``log q(y | a, x)`` at the guide's draw
        (reparameterised, so the term trains q(a | x) too)."""
        pyro.module(self.pyro_name, self)
        with pyro.plate("labeled", len(x)):
            a = pyro.sample("a", self.a_posterior(x))
            pyro.sample("y_classified", dist.OneHotCategorical(logits=self.classifier(self.features(x), a)), obs=self.one_hot(y))

    def classifier_guide(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """``a ~ q(a | x)``, the one latent of :meth:`classifier_model`."""
        pyro.module(self.pyro_name, self)
        with pyro.plate("labeled", len(x)):
            pyro.sample("a", self.a_posterior(x))

    def log_importance_weights(self, x: torch.Tensor, num_particles: int = 10, **kwargs) -> torch.Tensor:
        """``log p(x, y, z, a) - log q(a, y, z | x)`` with every guide site sampled (y too): an unbiased estimate of
        p(x) per particle, ``(S, N)``. M2's exact sum over y does not apply: q(z | a, y, x) needs a draw of a."""
        return PPModel.log_importance_weights(self, x, num_particles, **kwargs)
