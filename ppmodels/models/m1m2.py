"""The stacked M1+M2 model (Kingma et al. 2014): M2 on the latent features z1 of an M1 (VAE), trained in two stages."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pydantic import model_validator

from ..config import Field, IntList, config_dataclass
from ..data import Split, TrainData, map_rows
from ..errors import ConfigError, check_int
from ..nets import ACTIVATION_NAMES, flatten_event
from ..registry import register_model
from .base import Batch, ModelConfig, PPModel, data_plate
from .m2 import CLASS_PRIORS, M2, M2Config, PRIOR_DISPERSAL_REMEDY, PRIOR_IMBALANCE_REMEDY
from .vae import VAE

STAGES = ("m1", "m2")
Z1_DRAWS = ("epoch", "step")


def _as_in_m2(name: str, note: str = "") -> str:
    """M2's description of option ``name``, stated once in :class:`~ppmodels.models.m2.M2Config`."""
    return M2Config.__pydantic_fields__[name].description + note


@config_dataclass
class M1M2Config(ModelConfig):
    """The stacked model's options. ``alpha``, ``labeled_weight``, ``class_prior``, ``balanced_labeled`` and
    ``labeled_batch_size`` mean what they mean for M2, but the defaults are the paper's ``J_alpha``
    (``labeled_weight=1``, ``alpha=0.1 N / N_labeled``): on the codes z1 the labels weighted up as M2's defaults weigh
    them overfit within tens of epochs (MNIST-100: 9% test error after 30 M2 epochs, 31% after 180), while the paper's
    weighting kept improving (7.9% after 85; docs/ssl.md)."""

    num_classes: int = Field(10, ge=2, description="number of classes K.")
    z1_dim: int = Field(50, ge=1, description="size of the M1 latent z1.")
    z2_dim: int = Field(50, ge=1, description="size of the M2 style latent z2.")
    m1_hidden: IntList = Field(default_factory=lambda: [500], description="hidden layer sizes of the M1 (VAE) networks (the M1 "
                               "model's 500 units by default: on digits-50 the paper's 600-600 M1 gave codes on which label "
                               "spreading errs 21%, against 7.5% with 500; the MNIST benchmark uses 600-600).")
    m2_hidden: IntList = Field(default_factory=lambda: [500], description="hidden layer sizes of the M2 networks.")
    activation: Literal[ACTIVATION_NAMES] = Field("softplus", description="nonlinearity.")
    alpha: float | None = Field(None, ge=0, description=_as_in_m2("alpha", " Default here: ``None``, the paper's."))
    labeled_weight: float | None = Field(1.0, gt=0, description=_as_in_m2("labeled_weight", " Default here: 1, the paper's."))
    class_prior: Literal[CLASS_PRIORS] = Field("uniform", description=_as_in_m2("class_prior"))
    balanced_labeled: bool = Field(True, description=_as_in_m2("balanced_labeled"))
    labeled_batch_size: int | None = Field(None, ge=1, description=_as_in_m2("labeled_batch_size"))
    m1_epochs: int | None = Field(None, ge=1, description="epochs of the first stage (``None``: half of the epochs).")
    m1_binarize: bool | None = Field(None, description="train the M1 on dynamically binarised x (a fresh Bernoulli draw of every grey "
                                     "level each epoch, as the original M1 was; ``None``: when the likelihood is Bernoulli).")
    drop_inactive: bool = Field(True, description="model only the z1 dimensions whose posterior mean varies over the training data "
                                "(std above ``active_std``); the others follow N(0, 1) and M2 ignores them, as in the original code.")
    active_std: float = Field(0.1, ge=0, description="the posterior-mean standard deviation above which a z1 dimension counts as "
                              "active (``drop_inactive``).")
    z1_draws: Literal[Z1_DRAWS] = Field("epoch", description="how often the M2 stage draws ``z1 ~ q(z1 | x)`` afresh: ``epoch`` (one "
                                        "draw of every example an epoch, which each labeled example keeps for all the epoch's steps) "
                                        "or ``step`` (a fresh draw for every minibatch, labeled ones included, as the paper's released "
                                        "code does).")
    likelihoods: ClassVar[tuple[str, ...]] = ("bernoulli", "gaussian", "binomial")

    @model_validator(mode="after")
    def _check_binarize(self) -> M1M2Config:
        if self.m1_binarize and self.likelihood != "bernoulli":
            raise ConfigError(f"m1_binarize needs the Bernoulli likelihood, not {self.likelihood!r}; drop m1_binarize")
        return self


@register_model("m1m2")
class M1M2(PPModel):
    """M1+M2: a VAE (M1) learns features z1 of x; an M2 models z1 with a label y and a style z2.

    Generative story, for each datum::

        y ~ Categorical(pi),   z2 ~ Normal(0, I)                  (z2_dim)
        z1 ~ Normal(mu(y, z2), sigma(y, z2))                      (z1_dim; inactive dims ~ Normal(0, 1))
        x ~ p(x | z1)                                             (the M1 decoder)

    Guide: ``q(z1 | x)`` (the M1 encoder), ``q(y | z1)`` (enumerated for the ELBO), ``q(z2 | z1, y)``.
    Training, as in the paper: stage ``m1`` trains the VAE alone for ``m1_epochs``; stage ``m2`` then trains the
    M2 on draws ``z1 ~ q(z1 | x)``, resampled every epoch, with its semi-supervised objective ``J_alpha``. Both run
    in the one trainer, through the stage hooks. Prediction goes from pixels to labels:
    ``argmax_y q(y | E[z1 | x])``.

    Example::

        data = prepare_data(load_dataset("digits"), num_labels=50)
        model = M1M2(x_shape=[1, 8, 8], z1_dim=16, z2_dim=8, m1_hidden=[64], m2_hidden=[64], m1_epochs=2)
        model.fit(data, TrainConfig(epochs=3, min_epoch_steps=0)).predict(data.test.x)   # real use: m1_epochs=100, epochs=200, 256 units

    Reference: D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling, "Semi-supervised learning with deep generative
    models", NeurIPS 2014, section 3.2 (stacked model).
    """

    Config = M1M2Config
    imbalance_remedy = PRIOR_IMBALANCE_REMEDY
    dispersal_remedy = PRIOR_DISPERSAL_REMEDY
    config: M1M2Config

    def __init__(self, config: M1M2Config | None = None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.m1 = VAE(x_shape=c.x_shape, likelihood=c.likelihood, z_dim=c.z1_dim, hidden=c.m1_hidden, activation=c.activation)
        self.m2 = M2(x_shape=[c.z1_dim], likelihood="gaussian", num_classes=c.num_classes, z_dim=c.z2_dim, hidden=c.m2_hidden,
                     activation=c.activation, alpha=c.alpha, labeled_weight=c.labeled_weight, class_prior=c.class_prior, balanced_labeled=c.balanced_labeled,
                     labeled_batch_size=c.labeled_batch_size, standardize=False)  # z1 codes are on the prior's scale already
        self.stage_ = "m2"  # a built or loaded model is the whole stack

    # ----- the stacked Pyro pair (evaluation: ELBO of x) ----------------------------------------------------
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``y ~ p(y)``, ``z2 ~ N(0, I)``, ``z1 ~ p(z1 | y, z2)``, ``x ~ p(x | z1)``."""
        pyro.module(self.pyro_name, self)
        n = len(x) if x is not None else batch_size or 1
        with data_plate(n, num_data, self.device):
            y = pyro.sample("y", self.m2.y_prior(n))
            z2 = pyro.sample("z2", dist.Normal(torch.zeros(n, self.config.z2_dim, device=self.device), 1.0).to_event(1))
            z1 = pyro.sample("z1", self.m2.x_dist(z2, y))
            return pyro.sample("x", self.m1.x_dist(z1), obs=x)

    def guide(self, x: torch.Tensor, num_data: int | None = None, batch_size: int | None = None) -> None:
        """``z1 ~ q(z1 | x)``, ``y ~ q(y | z1)`` (enumerated), ``z2 ~ q(z2 | z1, y)``."""
        pyro.module(self.pyro_name, self)
        with data_plate(len(x), num_data, x.device):
            loc, scale = self.m1.encoder(flatten_event(x, self.config.x_shape))
            z1 = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))
            y = pyro.sample("y", dist.OneHotCategorical(logits=self.m2.y_logits(z1)), infer={"enumerate": "parallel"})
            loc2, scale2 = self.m2.encoder(self.m2.features(z1), y)
            pyro.sample("z2", dist.Normal(loc2, scale2).to_event(1))

    # ----- two training stages through the shared trainer ---------------------------------------------------
    def m1_epochs(self, num_epochs: int) -> int:
        m1 = self.config.m1_epochs or max(1, num_epochs // 2)
        if m1 >= num_epochs:
            raise ConfigError(f"m1_epochs ({m1}) leaves no epoch for M2 out of --epochs {num_epochs}; raise --epochs or lower m1_epochs")
        return m1

    def training_stage(self, epoch: int, num_epochs: int) -> str:
        return "m1" if epoch <= self.m1_epochs(num_epochs) else "m2"

    def start_stage(self, stage: str, data: TrainData) -> None:
        self.stage_ = stage
        if stage == "m2":
            self.set_active_dims(data.train.x)
            self.m2.set_class_prior(data.train)

    @torch.no_grad()
    def set_active_dims(self, x: torch.Tensor) -> None:
        """Keep the z1 dimensions whose posterior mean has std above ``active_std`` over ``x`` (at least one)."""
        std = torch.from_numpy(self.m1.encode(x)[0]).std(0)
        keep = std > self.config.active_std if self.config.drop_inactive else torch.ones_like(std, dtype=torch.bool)
        keep[std.argmax()] = True
        self.m2.feature_mask.copy_(keep.float())

    def binarizes_m1(self) -> bool:
        c = self.config
        return c.likelihood == "bernoulli" if c.m1_binarize is None else c.m1_binarize

    def trains_classifier(self) -> bool:
        return self.stage_ == "m2"

    @property
    def active_dims(self) -> list[int]:
        return torch.nonzero(self.m2.feature_mask).flatten().tolist()

    def training_batches(self, train: Split, batch_size: int, generator: torch.Generator):
        if self.stage_ == "m1":
            if self.binarizes_m1():
                train = Split(train.name, train.x, train.y, binarize="dynamic")
            yield from self.m1.training_batches(train, batch_size, generator)
            return
        posterior = Split(train.name, self.z1_posterior(train.epoch_x(generator)), train.y)
        if self.config.z1_draws == "epoch":  # one draw of every example from q(z1|x) for the whole epoch
            drawn = Split(train.name, self.draw_z1(posterior.x, generator), train.y)
            yield from self.m2.training_batches(drawn, batch_size, generator)
            return
        # "step": M2's batches of (loc, scale) rows, each turned into a fresh draw when served; a learned p(y) is
        # refitted at the posterior means E[z1 | x], where prediction reads q(y | z1)
        self.m2.learn_class_prior(Split(train.name, posterior.x[:, : self.config.z1_dim], train.y))
        for batch in self.m2.paired_batches(posterior, batch_size, generator):
            yield {key: self.draw_z1(value, generator) if key in ("x", "x_labeled") else value for key, value in batch.items()}

    @torch.no_grad()
    def z1_posterior(self, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        """Rows ``[loc, scale]`` of q(z1 | x), ``(N, 2 z1_dim)``."""
        return torch.cat([torch.from_numpy(a) for a in self.m1.encode(x, batch_size)], -1)

    def draw_z1(self, posterior: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z1 = loc + scale * eps`` for rows ``[loc, scale]`` of q(z1 | x)."""
        loc, scale = posterior.split(self.config.z1_dim, -1)
        return loc + scale * torch.randn(loc.shape, generator=generator).to(loc.device)

    def loss(self, batch: Batch) -> torch.Tensor:
        return self.m1.loss(batch) if self.stage_ == "m1" else self.m2.loss(batch)

    def elbo_per_datum(self, split: Split, batch_size: int = 1000) -> float:
        """In stage ``m1`` the VAE's ELBO (what that stage optimises); otherwise the ELBO of the whole stack."""
        if self.stage_ == "m1":
            return self.m1.elbo_per_datum(split, batch_size)
        return super().elbo_per_datum(split, batch_size)

    # ----- prediction, importance weights, sampling ---------------------------------------------------------
    def encode(self, x, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(z1_loc, z1_scale)`` of q(z1 | x)."""
        return map_rows(lambda xb: self.m1.encode(self.check_x(xb), batch_size), x, batch_size)

    def predict_proba(self, x) -> np.ndarray:
        """q(y | z1 = E[z1 | x]): class probabilities ``(N, K)``."""
        return self.m2.predict_proba(self.encode(x)[0])

    def predict(self, x) -> np.ndarray:
        return self.predict_proba(x).argmax(1)

    @torch.no_grad()
    def log_importance_weights(self, x: torch.Tensor, num_particles: int = 10, **kwargs) -> torch.Tensor:
        """``log p(x|z1) + log p_hat(z1) - log q(z1|x)`` for ``z1 ~ q(z1|x)``, where ``p_hat(z1)`` is M2's unbiased
        exact-over-y estimate of p(z1) (one z2 draw per class): unbiased for p(x). Shape ``(S, N)``."""
        x = self.check_x(x)
        with self.evaluating():
            loc, scale = self.m1.encoder(flatten_event(x, self.config.x_shape))
            q = dist.Normal(loc, scale).to_event(1)
            z1 = q.sample((num_particles,))  # (S, N, z1)
            log_pz1 = self.m2.exact_log_weights(z1.reshape(-1, self.config.z1_dim), 1).reshape(num_particles, len(x))
            return self.m1.x_dist(z1).log_prob(x) + log_pz1 - q.log_prob(z1)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None,
               label: int | None = None) -> np.ndarray:
        """``num`` draws: z1 = the mean of p(z1 | y, z2), decoded to the mean of p(x | z1); ``y``/``label`` as in M2."""
        check_int(num, "num", minimum=0)
        return self.m1.decode(self.m2.sample(num, generator=generator, y=y, label=label))

    @torch.no_grad()
    def decode_with_labels(self, x, y=None) -> np.ndarray:
        """Analogies: z1 = E[z1 | x], the style z2 = E[z2 | z1, y], then for every class k the mean of
        p(z1 | y=k, z2) decoded to the mean of p(x | z1): ``(N, K, *x_shape)``. ``y`` as in M2."""
        z1 = torch.from_numpy(self.encode(x)[0]).to(self.device)
        with self.evaluating():
            z1_every = self.m2.decode_every_class(self.m2.style(z1, y))  # (N, K, z1_dim)
        return self.m1.decode(z1_every.reshape(-1, self.config.z1_dim)).reshape(len(z1), self.num_classes, *self.config.x_shape)
