"""M2, the generative semi-supervised model (Kingma et al. 2014), with the label enumerated for unlabeled data."""

from __future__ import annotations

import math
from typing import ClassVar, Iterator, Literal

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch.nn import functional as F

from ..data import Split, TrainData, row_moments, take_rows
from ..errors import ConfigError, check_int
from ..config import Field, IntList, config_dataclass
from ..nets import ACTIVATION_NAMES, Classifier, GaussianEncoder, x_decoder, x_features
from ..registry import register_model
from .base import Batch, EncoderConfig, PPModel, data_plate
from .ssl_batches import labeled_unlabeled_batches
from .vae import observation_dist

CLASS_PRIORS = ("uniform", "labeled", "learned")
#: what the warnings of ``ppmodels.metrics.collapse_warnings`` advise for models with a class prior p(y) (M2,
#: the ADGM, M1+M2): against predictions collapsed onto one class, and against a majority class called rarer ones
PRIOR_IMBALANCE_REMEDY = "--set class_prior=labeled, --max-per-class, or more class-balanced labels (--labels)"
PRIOR_DISPERSAL_REMEDY = ("--set class_prior=learned (p(y) fitted to the unlabeled data), or class_prior=labeled when the labels "
                          "follow the data's class shares")


@config_dataclass
class M2Config(EncoderConfig):
    """M2's options; ``net`` (``mlp`` or ``conv``), ``channels``, ``corruption`` and ``noise_level`` come from
    :class:`~ppmodels.models.base.EncoderConfig`."""

    num_classes: int = Field(10, ge=2, description="number of classes K.")
    z_dim: int = Field(50, ge=1, description="size of the style latent z.")
    hidden: IntList = Field(default_factory=lambda: [500], description="hidden layer sizes of the encoder, decoder and classifier.")
    activation: Literal[ACTIVATION_NAMES] = Field("softplus", description="nonlinearity.")
    alpha: float | None = Field(10.0, ge=0, description="weight of each labeled example's classification term ``-log q(y|x)`` against "
                                "its ELBO; ``None``: the paper's, 0.1 N on the mean, that is ``0.1 N / N_labeled`` per labeled example.")
    labeled_weight: float | None = Field(None, gt=0, description="how many times each labeled example's terms (ELBO and "
                                         "classification) count; ``None``: ``N_unlabeled / N_labeled`` (at least 1), so the labeled set "
                                         "weighs as much as the unlabeled set, as in implementations that average each part per "
                                         "minibatch; ``1``: the paper's unbiased ``J_alpha``, which at 100 labels leaves the decoder "
                                         "blind to y (see docs/ssl.md).")
    class_prior: Literal[CLASS_PRIORS] = Field("uniform", description="p(y): ``uniform``, the ``labeled`` class frequencies, or "
                                               "``learned`` from the unlabeled data (before every pass over the data the ELBO's "
                                               "maximiser given the guide, the mean of q(y | x) over the unlabeled examples: for data "
                                               "whose class shares are unequal and unknown, since labels drawn per class say nothing "
                                               "of them).")
    balanced_labeled: bool = Field(True, description="draw labeled minibatches class-balanced (reweighted so the objective stays unbiased).")
    labeled_batch_size: int | None = Field(None, ge=1, description="labeled examples per step (``None``: the unlabeled batch size, at "
                                           "most the number of labels).")
    standardize: bool | None = Field(None, description="standardise each feature by the training data's mean and sd "
                                     "(every training row, labeled or not; no label is read) before the networks see it, "
                                     "and model the Gaussian likelihood on that scale, mapped back exactly (an affine "
                                     "change of variables: the ELBO stays in the data's units). ``None``: on for the "
                                     "``gaussian`` likelihood, whose data (colours and magnitudes, spectra) can have any "
                                     "scale and offset; off for values in [0, 1]. On a 6-column photometric table it "
                                     "lifted M2's balanced accuracy from 0.775 to 0.804 (3 seeds; docs/ssl.md).")
    likelihoods: ClassVar[tuple[str, ...]] = ("bernoulli", "gaussian", "binomial")

    def standardizes(self) -> bool:
        """Whether the features are standardised (``standardize``, or by default for the Gaussian likelihood)."""
        return self.likelihood == "gaussian" if self.standardize is None else self.standardize


@register_model("m2")
class M2(PPModel):
    """M2: a class label y and a style z generate x; unlabeled data sum over y exactly.

    Generative story, for each datum::

        y ~ Categorical(pi)                 (uniform, the labeled class frequencies, or learned: class_prior)
        z ~ Normal(0, I)                    (z_dim)
        x ~ p(x | y, z)                     (Bernoulli / binomial:N (logits=f(y, z)), or Normal(mu(y, z), sigma(y, z)))

    Guide: ``q(y | x) = Categorical(classifier(x))`` and ``q(z | x, y) = Normal(mu(x, y), sigma(x, y))``. For
    unlabeled data ``y`` is enumerated in parallel (``TraceEnum_ELBO``), never sampled; for labeled data it is
    observed. The objective is

        ``J = sum_unlabeled U(x) + lambda * sum_labeled [L(x, y) + alpha * log q(y | x)]``

    with ``lambda = labeled_weight`` (default ``N_unlabeled / N_labeled``) and ``alpha`` the classification weight;
    ``lambda = 1, alpha = 0.1 N / N_labeled`` is the paper's ``J_alpha``. Each part of a minibatch is scaled by its
    full-data count, so every step is an unbiased estimate of ``J``. The weights enter through ``poutine.scale``.

    Sample sites: ``y`` (one-hot, batch x K), ``z`` (batch, z_dim), ``x`` (batch, *x_shape), in the plate ``data``.
    Features whose ``feature_mask`` entry is 0 are not modelled by the networks: they follow p = 1/2 or
    Normal(0, 1) (the stacked M1+M2 uses this to drop uninformative latent dimensions).

    Options: the fields of :class:`M2Config` (``ppmodels models m2``), each described once there.

    Example::

        data = prepare_data(load_dataset("digits"), num_labels=50)
        m2 = M2(x_shape=[1, 8, 8], z_dim=10, hidden=[64]).fit(data, TrainConfig(epochs=1, min_epoch_steps=0))   # real use: epochs=100
        m2.predict(data.test.x)                       # argmax q(y|x)

    Reference: D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling, "Semi-supervised learning with deep generative
    models", NeurIPS 2014, section 3.2.
    """

    Config = M2Config
    imbalance_remedy = PRIOR_IMBALANCE_REMEDY
    dispersal_remedy = PRIOR_DISPERSAL_REMEDY
    config: M2Config

    def __init__(self, config: M2Config | None = None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        k = c.num_classes
        self.out_shape = c.x_shape if c.likelihood != "gaussian" else [2, *c.x_shape]  # Gaussian: loc and scale
        # a conv decoder emits channels: the Gaussian's loc and scale become 2C channels, split again in x_dist
        decoded = self.out_shape if c.net == "mlp" or c.likelihood != "gaussian" else [2 * c.x_shape[0], *c.x_shape[1:]]
        # one feature extractor (flattening, or a conv trunk) shared by q(y|x) and q(z|x,y); no weights for mlp
        self.x_features = x_features(c.net, c.x_shape, c.channels, c.activation)
        guide_dim = self.x_features.out_dim + self.auxiliary_dim()  # what q(y|.) and q(z|., y) see besides y
        self.classifier = Classifier(guide_dim, c.hidden, k, c.activation)
        self.encoder = GaussianEncoder(guide_dim + k, c.hidden, c.z_dim, c.activation)
        self.decoder = x_decoder(c.net, c.z_dim + k, list(reversed(c.hidden)), decoded, c.channels, c.activation)
        self.register_buffer("log_prior", torch.full((k,), -math.log(k)))
        self.register_buffer("feature_mask", torch.ones(c.x_shape))
        # the training data's per-feature mean and sd when standardize is on (start_stage); 0 and 1 until then, and in
        # runs saved before the option existed (load_state_dict keeps them: those were trained unstandardised)
        self.register_buffer("x_loc", torch.zeros(c.x_shape))
        self.register_buffer("x_scale", torch.ones(c.x_shape))
        self._every_feature: tuple[torch.Tensor, int, bool] | None = None  # models_every_feature's (mask, version, answer)

    # ----- distributions ------------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the guide networks see of ``x`` (flattened, or conv features), with masked-out features zeroed."""
        if self.config.standardizes():
            x = (x - self.x_loc) / self.x_scale
        return self.x_features(x if self.models_every_feature() else x * self.feature_mask)

    def models_every_feature(self) -> bool:
        """Whether no feature is masked out (the usual case: only M1+M2's stage masks dead z1 dimensions), so the
        masking can be skipped (2.5% of a bfloat16 M2 step on MNIST, measured side by side). The answer is kept
        until the mask changes (in place, by ``load_state_dict``, or moved by ``.to``): reading it off the tensor
        every step would wait for the GPU twice a step."""
        mask, cached = self.feature_mask, self._every_feature
        if cached is None or cached[0] is not mask or cached[1] != mask._version:
            cached = self._every_feature = (mask, mask._version, bool(mask.all()))
        return cached[2]

    def auxiliary_dim(self) -> int:
        """Size of the auxiliary variable the guide networks take beside x (the ADGM's ``a``); 0 in M2."""
        return 0

    def point_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The guide networks' inputs besides y without sampling: the features of ``x`` (the ADGM adds ``E[a | x]``)."""
        return (self.features(x),)

    def y_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y | x), ``(..., K)``."""
        return self.classifier(*self.point_inputs(x))

    def x_dist(self, z: torch.Tensor, y: torch.Tensor) -> dist.Distribution:
        """p(x | y, z) for a one-hot ``y``; leading (enumeration) dims of ``y`` and ``z`` broadcast."""
        out = self.decoder(z, y)
        out = out.reshape(*out.shape[: out.dim() - len(self.decoder.x_shape)], *self.out_shape)
        if self.config.likelihood != "gaussian":
            if not self.models_every_feature():
                out = torch.where(self.feature_mask.bool(), out, 0.0)
            return observation_dist(out, self.config.likelihood, None, self.x_event_dim)
        d = len(self.config.x_shape)
        loc, scale = out.select(-d - 1, 0), F.softplus(out.select(-d - 1, 1)) + 1e-3
        if self.config.standardizes():  # the decoder works in standard units: x = x_loc + x_scale * (standard x)
            loc, scale = self.x_loc + self.x_scale * loc, self.x_scale * scale
        if not self.models_every_feature():
            keep = self.feature_mask.bool()
            loc, scale = torch.where(keep, loc, 0.0), torch.where(keep, scale, 1.0)
        return dist.Normal(loc, scale).to_event(self.x_event_dim)

    def y_prior(self, n: int) -> dist.OneHotCategorical:
        return dist.OneHotCategorical(logits=self.log_prior.expand(n, -1))

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y.long(), self.config.num_classes).to(self.log_prior.dtype)

    # ----- the Pyro pair ------------------------------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_data: int | None = None,
              batch_size: int | None = None) -> torch.Tensor:
        """``y ~ p(y)``, ``z ~ N(0, I)``, ``x ~ p(x | y, z)``; ``y`` (class indices) is observed when given."""
        pyro.module(self.pyro_name, self)
        n = len(x) if x is not None else batch_size or 1
        with data_plate(n, num_data, self.device):
            y = pyro.sample("y", self.y_prior(n), obs=None if y is None else self.one_hot(y))
            z = pyro.sample("z", dist.Normal(torch.zeros(n, self.config.z_dim, device=self.device), 1.0).to_event(1))
            x = pyro.sample("x", self.x_dist(z, y), obs=x)
            self.model_auxiliary(x, y, z)
            return x

    def model_auxiliary(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> None:
        """Sites the generative story adds after ``x`` (the ADGM's ``a ~ p(a | x, y, z)``); none in M2."""

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, num_data: int | None = None,
              batch_size: int | None = None) -> None:
        """``y ~ q(y | x)`` (enumerated) unless observed, then ``z ~ q(z | x, y)``."""
        pyro.module(self.pyro_name, self)
        x_in = self.encoder_input(x)  # a corrupted copy in denoising training, else x
        with data_plate(len(x), num_data, x.device):
            inputs = self.guide_inputs(x_in)
            if y is None:
                y = pyro.sample("y", dist.OneHotCategorical(logits=self.classifier(*inputs)), infer={"enumerate": "parallel"})
            else:
                y = self.one_hot(y)
            loc, scale = self.encoder(*inputs, y)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def guide_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What q(y | .) and q(z | ., y) condition on, called inside the ``data`` plate: M2's features of ``x``
        (the ADGM samples its auxiliary ``a ~ q(a | x)`` here and adds it)."""
        return self.point_inputs(x)

    # ----- training -----------------------------------------------------------------------------------------
    def start_stage(self, stage: str, data: TrainData) -> None:
        """Set p(y) from the labeled class frequencies when ``class_prior='labeled'``, and the features' mean and sd
        from every training row when the features are standardised."""
        self.set_class_prior(data.train)
        self.set_standardization(data.train)

    @torch.no_grad()
    def set_standardization(self, train: Split) -> None:
        """``x_loc``, ``x_scale``: the mean and sd of each feature over every row of ``train`` (labels unread); a
        constant feature keeps sd 1."""
        if not self.config.standardizes():
            return
        mean, covariance = row_moments(train.x)
        sd = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        sd = np.where(sd > 1e-8 * max(1.0, float(np.abs(mean).max(initial=0.0))), sd, 1.0)
        self.x_loc.copy_(torch.from_numpy(mean).reshape(self.x_loc.shape))
        self.x_scale.copy_(torch.from_numpy(sd).reshape(self.x_scale.shape))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        """Runs saved before ``standardize`` existed have no ``x_loc``/``x_scale``: keep 0 and 1 (unstandardised, as
        they were trained) instead of refusing them."""
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        for name in ("x_loc", "x_scale"):
            if prefix + name in missing_keys and prefix + "feature_mask" in state_dict:
                missing_keys.remove(prefix + name)

    def set_class_prior(self, train: Split) -> None:
        if self.config.class_prior != "labeled" or train.num_labeled == 0:
            return
        self.set_prior_counts(torch.bincount(train.y[train.labeled], minlength=self.config.num_classes).float())

    @torch.no_grad()
    def learn_class_prior(self, train: Split) -> None:
        """The M-step for p(y) when ``class_prior='learned'``: ``pi = mean q(y | x)`` over the unlabeled examples of
        ``train`` (add-one smoothed), the maximiser of the unlabeled part of the ELBO in ``pi`` given the guide. The
        labeled examples are left out: labels drawn per class tell nothing of the shares."""
        if self.config.class_prior != "learned" or train.num_labeled == len(train):
            return
        self.set_prior_counts(torch.from_numpy(self.predict_proba(take_rows(train.x, ~train.labeled)).sum(0, dtype=np.float64)))

    def set_prior_counts(self, counts: torch.Tensor) -> None:
        """p(y) from (expected) class counts ``(K,)``, add-one smoothed so that no class becomes impossible."""
        self.log_prior.copy_(((counts + 1).log() - (counts + 1).sum().log()).to(self.log_prior))

    def labeled_weight_for(self, train: Split) -> float:
        """``lambda``: the configured ``labeled_weight``, else ``N_unlabeled / N_labeled`` (at least 1)."""
        if self.config.labeled_weight is not None:
            return float(self.config.labeled_weight)
        num_labeled = train.num_labeled
        return max(1.0, (len(train) - num_labeled) / num_labeled) if num_labeled else 1.0

    def training_batches(self, train: Split, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One pass of :meth:`paired_batches`, after refitting p(y) when ``class_prior='learned'``."""
        self.learn_class_prior(train)
        yield from self.paired_batches(train, batch_size, generator)

    def paired_batches(self, train: Split, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Unlabeled minibatches (``x``, ``num_data``) each paired with a reweighted labeled one (``x_labeled``...)."""
        c = self.config
        yield from labeled_unlabeled_batches(train, batch_size, c.labeled_batch_size, c.balanced_labeled, generator,
                                             self.device, alpha=self.alpha_for(train), labeled_weight=self.labeled_weight_for(train))

    def alpha_for(self, train: Split) -> float:
        """``alpha``: the configured one, else the paper's ``0.1 N / N_labeled`` per labeled example."""
        if self.config.alpha is not None:
            return float(self.config.alpha)
        return 0.1 * len(train) / max(1, train.num_labeled)

    def trains_classifier(self) -> bool:
        return True

    def loss(self, batch: Batch) -> torch.Tensor:
        """``-J`` estimated from one batch, all through ``TraceEnum_ELBO``: the unlabeled pair (y enumerated), the
        labeled pair and the classification pair, the labeled ones scaled per example by ``labeled_weights``."""
        total = torch.zeros((), device=self.device)
        if "x" in batch:
            total = total + self.elbo.differentiable_loss(self.model, self.guide, x=batch["x"], num_data=batch["num_data"])
        if "x_labeled" in batch:
            x, y, w = batch["x_labeled"], batch["y_labeled"], batch["labeled_weights"]
            scaled = (poutine.scale(self.model, scale=w), poutine.scale(self.guide, scale=w))
            total = total + self.elbo.differentiable_loss(*scaled, x=x, y=y, num_data=len(x))
            if batch["alpha"] != 0:  # poutine.scale refuses a zero scale: alpha = 0 drops the term
                weight = batch["alpha"] * w  # the guide too: the ADGM's classification guide draws a ~ q(a|x)
                scaled = (poutine.scale(self.classifier_model, scale=weight), poutine.scale(self.classifier_guide, scale=weight))
                total = total + self.elbo.differentiable_loss(*scaled, x=x, y=y)
        return total

    def classifier_model(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The classification term as a Pyro pair (as in Pyro's ss-vae example): ``y`` observed under q(y | x), so
        its ELBO is ``sum log q(y | x)``; scaled by ``alpha`` times each example's weight in :meth:`loss`."""
        pyro.module(self.pyro_name, self)
        with pyro.plate("labeled", len(x)):
            pyro.sample("y_classified", dist.OneHotCategorical(logits=self.y_logits(x)), obs=self.one_hot(y))

    def classifier_guide(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Nothing is latent in :meth:`classifier_model`."""

    # ----- prediction, importance weights, sampling ---------------------------------------------------------
    @torch.no_grad()
    def predict_proba(self, x, batch_size: int = 2000) -> np.ndarray:
        """q(y | x): class probabilities ``(N, K)``."""
        with self.evaluating():
            return torch.cat([self.y_logits(xb).softmax(-1) for xb in self.checked_batches(x, batch_size)]).cpu().numpy()

    def predict(self, x) -> np.ndarray:
        """``argmax_y q(y | x)``, ``(N,)``."""
        return self.predict_proba(x).argmax(1)

    def log_importance_weights(self, x: torch.Tensor, num_particles: int = 10, **kwargs) -> torch.Tensor:
        """Exact sum over y: particle s holds one ``z ~ q(z|x,y)`` per class and weighs
        ``w_s = sum_y p(y) p(x, z_sy | y) / q(z_sy | x, y)``, an unbiased estimate of p(x). Shape ``(S, N)``."""
        return self.exact_log_weights(self.check_x(x), num_particles)

    @torch.no_grad()
    def exact_log_weights(self, x: torch.Tensor, num_particles: int) -> torch.Tensor:
        k, n = self.config.num_classes, len(x)
        eye = torch.eye(k, device=x.device).unsqueeze(1)  # (K, 1, K): every class for every datum
        chunk = max(1, int(2e7 // max(1, k * n * math.prod(self.config.x_shape))))  # bound the (S, K, N, D) tensors
        out = []
        with self.evaluating():
            loc, scale = self.encoder(self.features(x), eye)  # (K, N, z)
            for start in range(0, num_particles, chunk):
                q = dist.Normal(loc, scale).to_event(1)
                z = q.sample((min(chunk, num_particles - start),))  # (s, K, N, z)
                log_w = (self.x_dist(z, eye).log_prob(x) + dist.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z)
                         + self.log_prior[:, None])
                out.append(torch.logsumexp(log_w, dim=1))
        return torch.cat(out)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None,
               label: int | None = None) -> np.ndarray:
        """``num`` draws decoded to the mean of p(x | y, z), ``(num, *x_shape)``; ``y`` (class indices, ``(num,)``)
        fixes the class of each draw, ``label`` that of all draws, else y ~ p(y)."""
        check_int(num, "num", minimum=0)
        if label is not None:
            y = torch.full((num,), self.check_label(label), dtype=torch.long)
        if y is None:
            y = torch.multinomial(self.log_prior.exp().cpu(), num, replacement=True, generator=generator)
        z = torch.randn(num, self.config.z_dim, generator=generator).to(self.device)
        with self.evaluating():
            d = self.x_dist(z, self.one_hot(torch.as_tensor(y, device=self.device)))
        return d.base_dist.mean.cpu().numpy()

    def check_label(self, label: int) -> int:
        if not 0 <= int(label) < self.num_classes:
            raise ConfigError(f"label {label} is out of range: the model has classes 0..{self.num_classes - 1}")
        return int(label)

    @torch.no_grad()
    def decode_with_labels(self, x, y=None) -> np.ndarray:
        """Analogies (Kingma et al. 2014, Fig. 1 right): the style ``z = E[z | x, y]`` of each datum decoded with every
        class, ``(N, K, *x_shape)`` means of p(x | y=k, z). ``y``: the data's classes ``(N,)`` if known, else
        ``argmax q(y | x)``."""
        x = self.check_x(x)
        with self.evaluating():
            return self.decode_every_class(self.style(x, y)).cpu().numpy()

    def style(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``E[z | x, y]``, ``(N, z_dim)``, with ``y`` the given classes or ``argmax q(y | x)``."""
        y = self.y_logits(x).argmax(-1) if y is None else torch.as_tensor(y, device=x.device)
        return self.encoder(*self.point_inputs(x), self.one_hot(y))[0]

    def style_means(self, x, batch_size: int = 2000) -> np.ndarray:
        """``E[z | x, argmax q(y | x)]`` for every datum, ``(N, z_dim)`` (the z written beside a predicted class map)."""
        return self.style_posterior(x, batch_size)[0]

    @torch.no_grad()
    def style_posterior(self, x, batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(z_loc, z_scale, y)``: q(z | x, y) at the class ``y = argmax q(y | x)`` of each datum, ``(N, z_dim)``
        twice and ``(N,)``. A single Gaussian code per datum: q(z | x) itself is a mixture over y, whose mean would lie
        between the classes' codes. Rows on disk are read a batch at a time."""
        parts = []
        with self.evaluating():
            for xb in self.checked_batches(x, batch_size):
                inputs = self.point_inputs(xb)
                y = self.classifier(*inputs).argmax(-1)
                parts.append((*self.encoder(*inputs, self.one_hot(y)), y))
        return tuple(torch.cat(part).cpu().numpy() for part in zip(*parts))

    def decode_every_class(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | y=k, z) for every class k and each row of ``z``: ``(N, K, *x_shape)``."""
        every = torch.eye(self.num_classes, device=z.device).unsqueeze(1)  # (K, 1, K) broadcasts against (N, z_dim)
        return self.x_dist(z, every).base_dist.mean.transpose(0, 1)
