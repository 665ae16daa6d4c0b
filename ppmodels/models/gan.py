"""The generative adversarial network (Goodfellow et al. 2014) in its DC-GAN form (Radford et al. 2016).

The generator is a Pyro model (``z ~ Normal(0, I)``, ``x = G(z)`` a deterministic site), so ``Predictive``,
``poutine.trace`` and ``poutine.condition`` work on it; the adversarial objective is the two losses below, which the
shared trainer minimises in turns through its parameter groups (:meth:`GAN.parameter_groups`).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pydantic import model_validator
from torch.nn import functional as F

from ..config import Field, IntList, config_dataclass
from ..data import TrainData
from ..errors import ConfigError
from ..nets import GAN_OUTPUTS, DCDiscriminator, DCGenerator, MLPDiscriminator, MLPGenerator
from ..registry import register_model
from .base import Batch, ModelConfig, PPModel, data_plate, needs_unit_interval

LOSSES = ("non_saturating", "minimax")


@config_dataclass
class GANConfig(ModelConfig):
    """Options of the GAN. ``likelihood`` is only read for the data's range (no likelihood is scored)."""

    z_dim: int = Field(100, ge=1, description="latent size.")
    net: Literal["auto", "conv", "mlp"] = Field("auto", description="``conv`` (DC-GAN, C x H x W images), ``mlp`` (flat data) or "
                                                "``auto`` (``conv`` for images).")
    channels: IntList = Field(default_factory=lambda: [64, 128], min_length=1, description="filters of the discriminator's stride-2 "
                              "convolutions (the generator mirrors them).")
    kernel: Literal[3, 4] = Field(4, description="kernel size of the generator's fractional-strided convolutions: 4, a multiple "
                                  "of the stride, gives every output pixel the same number of taps (no checkerboard pattern); "
                                  "3 (runs saved before the option) is a little cheaper.")
    hidden: IntList = Field(default_factory=lambda: [256, 256], description="hidden layer sizes of the ``mlp`` networks.")
    output: Literal[("auto", *GAN_OUTPUTS)] = Field("auto", description="the generator's last nonlinearity: ``sigmoid`` (data in "
                                                    "[0, 1]), ``tanh`` (data in [-1, 1]), ``linear`` or ``auto`` (sigmoid when the "
                                                    "likelihood the data implies needs [0, 1], else linear).")
    loss: Literal[LOSSES] = Field("non_saturating", description="the generator's loss, ``non_saturating`` (maximise log D(G(z))) "
                                  "or ``minimax`` (minimise log(1 - D(G(z)))).")
    k: int = Field(1, ge=1, description="discriminator steps per generator step.")
    label_smoothing: float = Field(0.1, ge=0, lt=0.5, description="one-sided label smoothing: the discriminator's target for real "
                                   "data is ``1 - label_smoothing`` (fakes stay 0).")
    g_lr: float = Field(2e-4, gt=0, description="the generator's Adam rate.")
    d_lr: float = Field(2e-4, gt=0, description="the discriminator's Adam rate.")
    g_betas: list[float] = Field(default_factory=lambda: [0.5, 0.999], description="the generator's Adam betas, two numbers in [0, 1).")
    d_betas: list[float] = Field(default_factory=lambda: [0.5, 0.999], description="the discriminator's Adam betas, two numbers in [0, 1).")
    minibatch_std: int = Field(0, ge=0, description="above 0, the discriminator also sees how much groups of this many examples "
                               "differ (the spread of its last features over the group; Karras et al. 2018 use 4), so a generator "
                               "that draws too few kinds of sample stands out; 0: off (on MNIST, seed 0, 4 did not move the distance "
                               "or the class mix: docs/models/gan.md).")
    r1_gamma: float = Field(0.0, ge=0, description="above 0, adds ``r1_gamma / 2`` times the mean squared norm of the gradient of "
                            "the discriminator's logit with respect to real data to its loss (R1, Mescheder, Geiger & Nowozin "
                            "2018): a discriminator flat on the data cannot push the generator past it, which damps the circling "
                            "the game does without it. Its scale follows the data's size and range: take it so the penalty is of "
                            "the order of the loss (on MNIST in [0, 1] the squared norm is about 150 after one epoch: 0.01); 0: "
                            "off (the default: the right scale depends on the data). On MNIST, 3 seeds, 0.01 took the Frechet "
                            "distance from 22.7 to 14.2 and evened the class mix, and with ema_decay=0.999 for 30 minutes it "
                            "reached 10.9 against the VAE's 12.8 (the MNIST recipe); on digits it was worse (docs/models/gan.md). "
                            "Costs a second backward pass through the discriminator on each real batch.")
    ema_decay: float = Field(0.0, ge=0, lt=1, description="above 0, samples come from an exponential moving average of the "
                             "generator's weights with this decay per generator step (Yazici et al. 2019; warmed up as "
                             "``min(decay, (1 + n) / (10 + n))`` after n steps; 0.999 is usual); 0 samples from the last weights "
                             "(without r1_gamma the average of 0.999 was no better on MNIST or digits; with r1_gamma=0.01 on "
                             "MNIST it took the Frechet distance from 12.2 to 10.9, 3 seeds: docs/models/gan.md).")
    likelihoods: ClassVar[tuple[str, ...]] = ("bernoulli", "gaussian", "binomial")
    saved_defaults: ClassVar[dict[str, Any]] = {"kernel": 3}

    @model_validator(mode="after")
    def _check_net_and_betas(self) -> GANConfig:
        if self.net == "conv" and self.x_shape and len(self.x_shape) != 3:
            raise ConfigError(f"net=conv needs image data (C x H x W), but the data has shape {self.x_shape}; use --set net=mlp")
        for name in ("g_betas", "d_betas"):
            betas = getattr(self, name)
            if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
                raise ConfigError(f"option {name} must be two numbers in [0, 1), got {betas}; fix --set {name}=[0.5,0.999]")
        return self

    @property
    def uses_conv(self) -> bool:
        return self.net == "conv" or (self.net == "auto" and len(self.x_shape) == 3)

    @property
    def output_fn(self) -> str:
        if self.output != "auto":
            return self.output
        return "sigmoid" if needs_unit_interval(self.likelihood) else "linear"


@register_model("gan")
class GAN(PPModel):
    """Generative adversarial network: a generator trained against a discriminator.

    Generative story, for each datum::

        z ~ Normal(0, I)                  (z_dim)
        x = G(z)                          (x_shape; deterministic: there is no p(x | z), hence no likelihood)

    Training plays the minimax game ``min_G max_D E_data[log D(x)] + E_z[log(1 - D(G(z)))]``: ``k`` discriminator
    steps (binary cross-entropy, real targets ``1 - label_smoothing``) per generator step, whose loss is
    ``-log D(G(z))`` (``non_saturating``, the default: strong gradients while D rejects the fakes) or
    ``log(1 - D(G(z)))`` (``minimax``). Two Adam optimisers, 2e-4 and beta1 = 0.5 as in DC-GAN.

    ``net=conv`` (DC-GAN): fractional-strided convolutions, batch norm and ReLU in the generator, sigmoid (data in
    [0, 1]) or tanh at its output; strided convolutions with LeakyReLU in the discriminator. ``net=mlp``: the same
    with linear layers, for flat data.

    Sample sites: ``z`` (batch, z_dim) and the deterministic ``x`` (batch, *x_shape), under the plate ``data``.

    Without a likelihood there is no ELBO and no log p(x): the trainer keeps the last epoch, and sample quality is
    measured by :mod:`ppmodels.analysis.sample_quality` (Frechet distance, precision/recall, mode coverage).

    Example::

        ppmodels train gan --data digits --epochs 1 --z-dim 16 --set channels=[16,32] --quiet --out runs/gan   # real use: --epochs 50 and the defaults
        ppmodels sample runs/gan --out grid.png

    References: I. Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014; A. Radford, L. Metz, S. Chintala,
    "Unsupervised Representation Learning with Deep Convolutional GANs", ICLR 2016; T. Salimans et al., "Improved
    Techniques for Training GANs", NeurIPS 2016 (one-sided label smoothing); T. Karras et al., "Progressive Growing of
    GANs", ICLR 2018 (``minibatch_std``); L. Mescheder, A. Geiger, S. Nowozin, "Which Training Methods for GANs do
    actually Converge?", ICML 2018 (``r1_gamma``).
    """

    Config = GANConfig
    config: GANConfig
    has_elbo: ClassVar[bool] = False

    def __init__(self, config: GANConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        c = self.config
        if c.uses_conv:
            self.generator = DCGenerator(c.z_dim, c.x_shape, c.channels, c.output_fn, c.kernel)
            self.discriminator = DCDiscriminator(c.x_shape, c.channels, c.minibatch_std)
        else:
            self.generator = MLPGenerator(c.z_dim, c.hidden, c.x_shape, c.output_fn)
            self.discriminator = MLPDiscriminator(c.x_shape, c.hidden, c.minibatch_std)
        if c.ema_decay > 0:  # the averaged generator that samples once training is over: no gradient, no optimiser
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def model(self, x: torch.Tensor | None = None, num_data: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``z ~ N(0, I)``, ``x = G(z)``: ``batch_size`` draws (or as many as ``x`` has rows; ``x`` itself is not
        observed, a GAN has no likelihood to score it with)."""
        pyro.module(self.pyro_name, self.generator)
        n = len(x) if x is not None else batch_size or 1
        with data_plate(n, num_data, self.device):
            z = pyro.sample("z", dist.Normal(torch.zeros(n, self.config.z_dim, device=self.device), 1.0).to_event(1))
            return pyro.deterministic("x", self.sampler(z), event_dim=self.x_event_dim)

    @property
    def sampler(self) -> torch.nn.Module:
        """The network that maps codes to images: the trained generator while training, its weight average
        (``ema_decay``) otherwise."""
        return self.generator if self.training or self.config.ema_decay == 0 else self.generator_ema

    def after_group_step(self, name: str) -> None:
        """After a generator step, move the average toward the new weights (batch-norm statistics are copied)."""
        if name != "generator" or self.config.ema_decay == 0:
            return
        n = int(self.ema_updates)
        decay = min(self.config.ema_decay, (1 + n) / (10 + n))
        with torch.no_grad():
            for average, weight in zip(self.generator_ema.parameters(), self.generator.parameters()):
                average.lerp_(weight, 1.0 - decay)
            for average, buffer in zip(self.generator_ema.buffers(), self.generator.buffers()):
                average.copy_(buffer)
        self.ema_updates += 1

    def guide(self, *args: Any, **kwargs: Any) -> None:
        raise ConfigError("a GAN has no inference network q(z | x): it cannot encode data or score it")

    # ----- the adversarial objective, run by the trainer's parameter groups ----------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        c = self.config
        return [{"name": "discriminator", "params": list(self.discriminator.parameters()), "lr": c.d_lr, "betas": tuple(c.d_betas), "lr_option": "d_lr"},
                {"name": "generator", "params": list(self.generator.parameters()), "lr": c.g_lr, "betas": tuple(c.g_betas), "lr_option": "g_lr"}]

    def step_groups(self, step: int) -> tuple[str, ...]:
        """The discriminator every step, the generator after every ``k``-th."""
        return ("discriminator", "generator") if (step + 1) % self.config.k == 0 else ("discriminator",)

    def group_loss(self, name: str, batch: Batch) -> torch.Tensor:
        x = batch["x"]
        if name == "discriminator":
            with torch.no_grad():
                fake = self.model(batch_size=len(x))
            penalise = self.config.r1_gamma > 0 and torch.is_grad_enabled()
            real = x.detach().requires_grad_() if penalise else x
            real_logits = self.discriminator(real)
            loss = discriminator_loss(real_logits, self.discriminator(fake), self.config.label_smoothing)
            return loss + r1_penalty(real_logits, real, self.config.r1_gamma) if penalise else loss
        return generator_loss(self.discriminator(self.model(batch_size=len(x))), self.config.loss)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The sum of both players' losses on ``batch`` (for reports; training minimises each on its own group)."""
        return self.group_loss("discriminator", batch) + self.group_loss("generator", batch)

    def elbo_per_datum(self, split, batch_size: int = 1000) -> float:
        raise ConfigError("a GAN has no likelihood, so no ELBO; measure its samples with ppmodels.analysis.sample_quality")

    def iw_log_likelihood(self, x, num_particles: int = 100, batch_size: int = 500) -> torch.Tensor:
        raise ConfigError("a GAN has no likelihood, so no log p(x) (not available)")

    # ----- sampling ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z) -> np.ndarray:
        """``G(z)`` for latents ``z`` ``(N, z_dim)``: ``(N, *x_shape)`` (batch norm with its running statistics)."""
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=self.device)
        with self.evaluating():
            return self.sampler(z).cpu().numpy()

    def sample(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` draws ``G(z)``, ``z ~ N(0, I)``: ``(num, *x_shape)``."""
        return self.decode(self.sample_codes(num, generator))

    def sample_codes(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` draws ``z ~ N(0, I)`` ``(num, z_dim)``: with one ``generator`` seed, the codes of :meth:`sample`'s images."""
        return torch.randn(num, self.config.z_dim, generator=generator).numpy()

    @torch.no_grad()
    def discriminate(self, x) -> np.ndarray:
        """``D(x)``, the discriminator's probability that each row of ``x`` is real: ``(N,)``."""
        with self.evaluating():
            return torch.cat([self.discriminator(xb).sigmoid() for xb in self.checked_batches(x, 1000)]).cpu().numpy()

    def fit_checks(self, data: TrainData) -> dict[str, Any]:
        """How the game ended: the discriminator's mean ``D(x)`` on held-out data, ``D(G(z))`` on as many samples, and
        its accuracy telling them apart at 0.5 (near 1: it wins outright and the generator learns nothing more)."""
        held_out = next(split for split in (data.test, data.valid, data.train) if split is not None)
        n = min(len(held_out), 2000)
        real = self.discriminate(held_out.x[:n])
        with torch.no_grad(), self.evaluating():  # the game's own player, not the average that samples
            fake = self.generator(torch.as_tensor(self.sample_codes(n, torch.Generator().manual_seed(0)), device=self.device))
        fake = self.discriminate(fake)
        accuracy = 0.5 * (float((real > 0.5).mean()) + float((fake <= 0.5).mean()))
        return {"discriminator_real": round(float(real.mean()), 4), "discriminator_fake": round(float(fake.mean()), 4),
                "discriminator_accuracy": round(accuracy, 4)}


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """``-[log D(x)] - log(1 - D(G(z)))`` averaged over the batch, with real targets ``1 - label_smoothing``."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 1.0 - label_smoothing))
    return real + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor, gamma: float) -> torch.Tensor:
    """``gamma / 2 * E ||d logit / d x||^2`` over the real batch (Mescheder, Geiger & Nowozin 2018, eq. 9), kept in the
    graph so the discriminator's step minimises it; ``real`` must require a gradient."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return 0.5 * gamma * grad.float().pow(2).flatten(1).sum(dim=1).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """``-log D(G(z))`` (non-saturating) or ``log(1 - D(G(z)))`` (minimax), averaged; ``log(1 - sigmoid(l)) = -softplus(l)``."""
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    return -F.softplus(fake_logits).mean()
