"""What every ppmodels model shares: its config, the Pyro loss, batching, and the scikit-learn style surface.

A model is an ``nn.Module`` holding plain networks, with a Pyro ``model()``/``guide()`` pair. The trainer
(:func:`ppmodels.fit`, or :meth:`PPModel.fit`) optimises ``parameters()`` with torch's Adam and calls, beside the
``nn.Module`` surface (``state_dict``, ``train``/``eval``, ``to``): :meth:`PPModel.check_data`,
:meth:`PPModel.training_batches`, :meth:`PPModel.loss` (Pyro's ``TraceEnum_ELBO`` of the pair),
:meth:`PPModel.elbo_per_datum`, the hooks (:meth:`PPModel.training_stage`, :meth:`PPModel.start_stage`,
:meth:`PPModel.before_fit`, :meth:`PPModel.after_fit`) and :meth:`PPModel.trains_classifier` (with ``predict`` for
validation accuracy while it is true), so a model with an unusual objective (the M2 classifier term, say) overrides
those and nothing else changes. Every built-in model also calls ``pyro.module(self.pyro_name, self)`` in its
``model`` and ``guide``, so plain ``pyro.infer.SVI`` with a ``pyro.optim`` optimizer trains it too.

What a model can do beyond its ELBO is told by small protocols (:class:`CanEncode`, :class:`CanDecode`,
:class:`CanClassify`, :class:`CanCluster`, :class:`CanSample`, :class:`CanReconstruct`, :class:`LabeledGenerator`),
checked with ``isinstance``.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from contextlib import contextmanager
from typing import Any, ClassVar, Iterator, Literal, Protocol, runtime_checkable

import numpy as np
import pyro
import torch
from pyro.infer import TraceEnum_ELBO
from pydantic import model_validator
from torch import nn

from ..config import Field, IntList, build_config, config_dataclass, is_config_dataclass
from ..corruption import CORRUPTIONS, check_corruption, corrupt
from ..data import Dataset, LazyRows, Split, TrainData, binomial_trials, in_unit_interval, shuffled_batches
from ..data.dataset import nonfinite_rows
from ..errors import ConfigError, DataError, check_int
from ..infer.importance import iw_log_likelihood, log_importance_weights
from ..infer.trainer import TrainConfig, fit
from ..nets import NETS

Batch = dict[str, Any]

# Every model trains with TraceEnum_ELBO so that discrete latents are enumerated wherever they appear; for models
# without one (the VAE) Pyro warns on each step that there is nothing to enumerate, which is expected here.
warnings.filterwarnings("ignore", message="TraceEnum_ELBO found no sample sites configured for enumeration")


# How to declare an option (ppmodels/config.py): `name: type = Field(default, ge=..., description="meaning.")` in a
# class decorated with @config_dataclass; choices as Literal[...], lists of sizes as IntList with default_factory;
# rules between fields in the class's one @model_validator(mode="after"), raising ConfigError. The description is
# what `ppmodels models NAME`, --help and docs/models/*.md show, so it is not repeated in the class docstring.
@config_dataclass
class ModelConfig:
    """Fields every model has. ``x_shape`` and ``likelihood`` are filled in from the data when not given."""

    x_shape: IntList = Field(default_factory=list, description="shape of one datum, e.g. ``[1, 28, 28]`` or ``[64]``.")
    likelihood: str = Field("bernoulli", description="p(x | ...): ``bernoulli`` (data in [0, 1]), ``binomial:N`` (data k/N) or "
                            "``gaussian`` (default: from the data's range).")
    seed: int | None = Field(None, description="when set, the initial weights are drawn from it (two models built with one seed "
                             "are equal), as scikit-learn's ``random_state``; ``None`` draws them from torch's global generator.")
    #: the likelihood families this model's decoder implements (``binomial`` is written ``binomial:N``)
    likelihoods: ClassVar[tuple[str, ...]] = ("bernoulli", "gaussian")
    #: how a user sets a field (error messages name it so)
    option_flag: ClassVar[str] = "--set {name}=VALUE"
    #: options whose default changed, with the value a saved config that lacks them was trained with (a run saved
    #: before the change loads as it was trained)
    saved_defaults: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="after")
    def _check_likelihood(self) -> ModelConfig:
        family = self.likelihood.partition(":")[0]
        if family not in self.likelihoods or (family == "binomial") != (binomial_trials(self.likelihood) is not None):
            names = ", ".join("binomial:N" if f == "binomial" else f for f in self.likelihoods)
            raise ConfigError(f"unknown likelihood {self.likelihood!r} for this model; use one of {names}")
        return self


def likelihood_name(likelihood: str) -> str:
    return "Bernoulli" if likelihood == "bernoulli" else likelihood


def needs_unit_interval(likelihood: str) -> bool:
    return likelihood == "bernoulli" or binomial_trials(likelihood) is not None


@config_dataclass
class EncoderConfig(ModelConfig):
    """Options of every model with an encoder q(z | x) (``vae``, ``m1``, ``gmvae``, ...)."""

    net: Literal[NETS] = Field("mlp", description="``mlp`` (flattened inputs) or ``conv`` (convolutions over C x H x W images, any "
                               "number of channels).")
    channels: IntList = Field(default_factory=lambda: [32, 64], min_length=1, description="filters of each stride-2 convolution "
                              "(``conv`` only); the decoder mirrors them.")
    corruption: Literal[CORRUPTIONS] = Field("none", description="denoising: ``none``, ``mask`` (zero each input feature with rate "
                                             "``noise_level``) or ``gaussian`` (add noise of standard deviation ``noise_level``). The "
                                             "encoder sees the corrupted copy in training; the likelihood scores the clean x.")
    noise_level: float = Field(0.0, ge=0, description="the masking rate nu or the Gaussian noise standard deviation.")

    @model_validator(mode="after")
    def _check_net_and_corruption(self) -> EncoderConfig:
        if self.net == "conv" and self.x_shape and len(self.x_shape) != 3:
            raise ConfigError(f"--net conv needs image data (C x H x W), but the data has shape {self.x_shape}; use --net mlp")
        check_corruption(self.corruption, self.noise_level)
        return self


def data_plate(batch_size: int, num_data: int | None, device: torch.device) -> pyro.plate:
    """The per-datum plate: a batch of ``batch_size`` standing for ``num_data`` points scales log-probs by N/B."""
    return pyro.plate("data", size=num_data or batch_size, subsample=torch.arange(batch_size, device=device))


@runtime_checkable
class CanEncode(Protocol):
    """Models with an encoder q(z | x): ``encode`` gives its means and scales, ``transform`` the means."""

    def encode(self, x: Any, batch_size: int = ...) -> tuple[np.ndarray, np.ndarray]: ...

    def transform(self, x: Any) -> np.ndarray: ...


@runtime_checkable
class CanDecode(Protocol):
    """Models that map latent codes back to the mean of p(x | z)."""

    def decode(self, z: Any) -> np.ndarray: ...


@runtime_checkable
class CanClassify(Protocol):
    """Models that predict labels: ``predict`` (classes) and ``predict_proba`` (``(N, K)`` probabilities)."""

    def predict(self, x: Any) -> np.ndarray: ...

    def predict_proba(self, x: Any) -> np.ndarray: ...


@runtime_checkable
class CanCluster(Protocol):
    """Models that group data without labels (a mixture's most probable component)."""

    def cluster(self, x: Any) -> np.ndarray: ...


@runtime_checkable
class CanSample(Protocol):
    """Generative models that draw new data: ``sample(num, generator)`` gives decoded means ``(num, *x_shape)``."""

    def sample(self, num: int, generator: torch.Generator | None = None) -> np.ndarray: ...


@runtime_checkable
class CanSampleCodes(Protocol):
    """Models that draw data from latent codes: ``sample_codes(num, generator)`` gives ``(num, z_dim)`` draws of p(z)
    and ``decode(z)`` maps codes to data, so codes can be interpolated and averaged (``ppmodels sample
    --interpolate``, ``--analogy``)."""

    def sample_codes(self, num: int, generator: torch.Generator | None = None) -> np.ndarray: ...

    def decode(self, z: Any) -> np.ndarray: ...


@runtime_checkable
class LabeledGenerator(Protocol):
    """What a model whose generative story has a class ``y ~ Cat(pi)`` provides to the sampling modes.

    ``num_classes``                 the number of classes K; labels are ``0..K-1``.
    ``sample(num, label, generator)`` ``num`` draws x ~ p(x | y=label, z), z ~ p(z), decoded to the mean of
                                    p(x | y, z): ``(num, *x_shape)``; ``label=None`` draws y from p(y).
    ``decode_with_labels(x, y)``    the analogies: z inferred from each ``x`` ``(N, *x_shape)`` by the guide (its
                                    mean, given the classes ``y`` ``(N,)`` when known, else the predicted ones),
                                    decoded with every class: ``(N, K, *x_shape)``.
    """

    num_classes: int

    def sample(self, num: int, label: int | None = None, generator: torch.Generator | None = None) -> np.ndarray: ...

    def decode_with_labels(self, x, y=None) -> np.ndarray: ...


@runtime_checkable
class CanStyle(Protocol):
    """Models whose z is inferred given a class (M2): ``style_means(x)`` is ``E[z | x, argmax q(y|x)]``, ``(N, z_dim)``;
    ``style_posterior(x)`` gives ``(z_loc, z_scale, y)`` of q(z | x, y) at that class ``y``."""

    def style_means(self, x: Any) -> np.ndarray: ...

    def style_posterior(self, x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@runtime_checkable
class CanReconstruct(Protocol):
    """Models that map data to the mean of p(x | z) at z = E[z | x]."""

    def reconstruct(self, x: Any) -> np.ndarray: ...


_instances = itertools.count()


class PPModel(nn.Module):
    """Base class of the registered models. Subclasses set ``Config`` and write ``model``/``guide``.

    Each instance has a name of its own (:attr:`pyro_name`) under which its ``model`` and ``guide`` register its
    parameters in Pyro's param store (``pyro.module(self.pyro_name, self)``; a subclass must make that call for plain
    Pyro to see them), so two models of one class train side by side, with the trainer or with plain
    ``pyro.infer.SVI`` (``tests/models/test_plain_svi.py`` checks every registered model).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    #: models that need labels to fit (classifiers) set this; ``fit`` then refuses data without labels
    needs_labels: ClassVar[bool] = False
    #: what counters a classifier that collapses onto one class, in this model's options (the collapse warning says it;
    #: ``None``: the options every model has, ``ppmodels.metrics.REMEDY``)
    imbalance_remedy: ClassVar[str | None] = None
    #: what counters the opposite, a majority class mostly called rarer classes (``None``:
    #: ``ppmodels.metrics.DISPERSAL_REMEDY``)
    dispersal_remedy: ClassVar[str | None] = None
    #: whether the model has a likelihood, hence an ELBO to validate and select epochs by (the GAN has none: the
    #: trainer keeps its last epoch, and commands report sample quality instead)
    has_elbo: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not is_config_dataclass(cls.Config):  # a plain @dataclasses.dataclass Config (a plugin's): typed and checked too
            config_dataclass(cls.Config)

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any):
        super().__init__()
        config = build_config(self.Config, config, **kwargs)
        if not config.x_shape:
            raise ConfigError(f"model {self.name or type(self).__name__!r} needs x_shape, the shape of one datum (e.g. x_shape=[1, 28, 28]); "
                              "give it, or build the config from the data with config_from_data")
        self.config = config
        self._elbo: TraceEnum_ELBO | None = None
        self.pyro_name = f"{self.name or type(self).__name__.lower()}_{next(_instances)}"
        if config.seed is not None:  # the subclass builds its networks right after this: from this seed
            torch.manual_seed(config.seed)

    # ----- construction from data ---------------------------------------------------------------------------
    @classmethod
    def config_from_data(cls, dataset: Dataset, **options: Any) -> ModelConfig:
        """A config for ``dataset``: shapes, likelihood and class count from the data, the rest from ``options``."""
        names = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(k for k, v in options.items() if v is not None and k not in names)
        if unknown:
            raise ConfigError(f"option(s) {', '.join(unknown)} do not apply to model {cls.name!r}; it takes {', '.join(sorted(names))}")
        values = {k: v for k, v in options.items() if v is not None}
        derived = {"x_shape": list(dataset.x_shape), "likelihood": dataset.likelihood, "num_classes": dataset.num_classes}
        for key, value in derived.items():
            if key in names and key not in values and value is not None:
                values[key] = value
        return cls.Config(**values)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def x_event_dim(self) -> int:
        return len(self.config.x_shape)

    # ----- training ---------------------------------------------------------------------------------------------
    def fit(self, data: TrainData | Dataset, config: TrainConfig | None = None, **kwargs: Any) -> PPModel:
        """Train this model on ``data`` (a :class:`~ppmodels.data.Dataset` or prepared
        :class:`~ppmodels.data.TrainData`) with the shared trainer and return it, as scikit-learn's ``fit`` does: the
        same call as ``ppmodels.fit(self, data, config, **kwargs)`` (keywords: ``callbacks``, ``run_dir``,
        ``resume``, ``device``). ``config``: a :class:`~ppmodels.infer.TrainConfig` (its defaults when ``None``)."""
        return fit(self, data, config, **kwargs)

    # ----- the Pyro pair and its loss -------------------------------------------------------------------------
    def model(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def guide(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @property
    def elbo(self) -> TraceEnum_ELBO:
        if self._elbo is None:
            self._elbo = TraceEnum_ELBO(max_plate_nesting=1)
        return self._elbo

    def pyro_loss(self, batch: Batch) -> torch.Tensor:
        """The objective's definition: ``TraceEnum_ELBO.differentiable_loss`` of the Pyro pair on ``batch``."""
        return self.elbo.differentiable_loss(self.model, self.guide, **batch)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Differentiable negative ELBO of a batch, scaled to stand for the whole training set: what the trainer
        minimises. It is always Pyro's ``TraceEnum_ELBO`` of the model/guide pair (:meth:`pyro_loss`); a model with
        extra terms (M2's classifier) adds them here."""
        return self.pyro_loss(batch)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What a guide's encoder sees of ``x``: in training, a corrupted copy when the config asks for denoising.

        Guides call this instead of using ``x`` directly; the model keeps scoring the clean ``x``.
        """
        config = self.config
        if not self.training or not isinstance(config, EncoderConfig):
            return x
        return corrupt(x, config.corruption, config.noise_level)

    def training_batches(self, train: Split, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch of shuffled minibatches as keyword arguments of ``model``/``guide`` (rows on disk are read a
        pool of blocks at a time, :func:`~ppmodels.data.shuffled_batches`)."""
        x = train.epoch_x(generator)
        for xb in shuffled_batches(x, batch_size, generator):
            yield {"x": xb.to(self.device), "num_data": len(x)}

    def training_stage(self, epoch: int, num_epochs: int) -> str:
        """The stage that epoch ``epoch`` (1-based) of ``num_epochs`` belongs to. Models trained in stages (M1+M2)
        override this; when it changes the trainer calls :meth:`start_stage` and restarts early stopping, which
        only ends training in the final stage."""
        return "fit"

    def start_stage(self, stage: str, data: TrainData) -> None:
        """Prepare for ``stage`` (the trainer calls this before its first epoch, and again when resuming)."""

    def before_fit(self, data: TrainData) -> None:
        """Data-dependent initialisation before the variational fit (the GMM seeds its means with k-means here)."""

    def after_fit(self, data: TrainData) -> None:
        """Work after the variational fit (M1 fits its classifier here)."""

    def fit_checks(self, data: TrainData) -> dict[str, Any]:
        """Checks of the fitted model against an answer known without SVI, for the run's summary (PPCA: the angle to
        its closed-form maximum-likelihood subspace); none by default."""
        return {}

    def parameter_groups(self) -> list[dict[str, Any]] | None:
        """Named parameter groups trained on objectives of their own (the GAN's discriminator and generator): dicts
        with ``name``, ``params`` and any Adam settings (``lr``, ``betas``; the trainer's ``lr`` when left out; a group
        whose ``lr`` is a model option names it in ``lr_option``, and the trainer then refuses its own ``lr``). The
        trainer then calls :meth:`step_groups` and :meth:`group_loss` instead of :meth:`loss`. ``None`` (the default):
        one objective, :meth:`loss`, for every parameter."""
        return None

    def step_groups(self, step: int) -> tuple[str, ...]:
        """The groups that training step ``step`` (the number of steps taken before it) updates, in order."""
        raise NotImplementedError

    def group_loss(self, name: str, batch: Batch) -> torch.Tensor:
        """The differentiable loss that group ``name`` minimises on ``batch``."""
        raise NotImplementedError

    def after_group_step(self, name: str) -> None:
        """Work after group ``name``'s Adam step (the GAN averages its generator's weights here); none by default."""

    #: the trainer keeps the epoch with the best *training* ELBO (a maximum-likelihood fit whose target is defined on
    #: the training data, as PPCA's closed form is), not the best validation ELBO, which may peak at a transient
    selects_on_training_data: bool = False

    @property
    def updates_in_closed_form(self) -> bool:
        """Whether the trainer calls :meth:`closed_form_step` for each batch instead of an Adam step (PPCA's EM)."""
        return False

    def closed_form_step(self, batch: Batch) -> float:
        """Update the parameters in closed form from ``batch`` (e.g. accumulate an E-step and take the M-step once a
        pass over the data is complete) and return the batch's loss before the update, as an Adam step would."""
        raise NotImplementedError(f"{self.name} has no closed-form update")

    def trains_classifier(self) -> bool:
        """Whether the current stage trains a classifier q(y|x) (then ``predict`` works during training and the trainer
        can select the epoch with the best validation accuracy)."""
        return False

    def evaluation_batches(self, split: Split, batch_size: int = 1000) -> Iterator[Batch]:
        """Unscaled batches (``num_data`` = batch size) covering ``split`` once, in order."""
        for x in split.x.split(batch_size):
            yield {"x": x.to(self.device), "num_data": len(x)}

    @torch.no_grad()
    def elbo_per_datum(self, split: Split, batch_size: int = 1000) -> float:
        """The ELBO of ``split`` divided by its size (one Monte Carlo sample per datum)."""
        with self.evaluating():
            total = sum(self.eval_loss(batch) for batch in self.evaluation_batches(split, batch_size))
        return -total / len(split)

    def eval_loss(self, batch: Batch) -> float:
        """Negative ELBO of an evaluation batch: ``TraceEnum_ELBO.loss`` of the Pyro pair."""
        return self.elbo.loss(self.model, self.guide, **batch)

    def log_importance_weights(self, x: torch.Tensor, num_particles: int = 10, **kwargs: Any) -> torch.Tensor:
        """``log p(x, z) - log q(z | x)`` for ``num_particles`` guide draws per datum: shape ``(num_particles, N)``.

        The generic version (:func:`ppmodels.infer.importance.log_importance_weights`) samples every guide site; a
        model with a discrete latent may override it with an exact sum.
        """
        return log_importance_weights(self, self.check_x(x), num_particles, **kwargs)

    @torch.no_grad()
    def iw_log_likelihood(self, x: torch.Tensor, num_particles: int = 100, batch_size: int = 500) -> torch.Tensor:
        """Per-datum importance-weighted lower bound on log p(x) with ``num_particles`` samples: shape ``(N,)``."""
        check_int(num_particles, "num_particles", minimum=1)
        return torch.cat([iw_log_likelihood(self.log_importance_weights(xb, num_particles)) for xb in self.checked_batches(x, batch_size)])

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    # ----- checks -------------------------------------------------------------------------------------------
    def checked_batches(self, x: Any, batch_size: int) -> Iterator[torch.Tensor]:
        """``x`` checked by :meth:`check_x`, ``batch_size`` rows at a time; rows on disk are read one batch at a time."""
        if isinstance(x, LazyRows):
            for xb in x.split(batch_size):
                yield self.check_x(xb)
        else:
            yield from self.check_x(x).split(batch_size)

    def check_x(self, x: Any) -> torch.Tensor:
        """``x`` as a float tensor on the model's device, after checking its shape, finiteness and range."""
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise DataError(f"inputs of type {type(x).__name__} are not a numeric array; give floats of shape (N, *{tuple(self.config.x_shape)}) "
                            f"(for a data spec use the command, e.g. ppmodels.score)") from None
        shape = tuple(self.config.x_shape)
        if tuple(x.shape[1:]) != shape:
            if x.dim() >= 2 and x[0].numel() == int(np.prod(shape)):
                x = x.reshape(len(x), *shape)
            else:
                raise DataError(f"inputs have {int(np.prod(x.shape[1:]))} features (shape {tuple(x.shape[1:])}) but the model was trained on shape {shape}; give data like the training data")
        if not torch.isfinite(x).all():
            raise DataError("inputs have NaN or infinite values; remove or impute them first")
        if needs_unit_interval(self.config.likelihood) and not in_unit_interval(x):
            raise DataError(f"inputs span [{float(x.min()):g}, {float(x.max()):g}] but a {likelihood_name(self.config.likelihood)} likelihood needs [0, 1]; rescale them to [0, 1] like the training data (or train with --likelihood gaussian)")
        return x.to(self.device)

    def check_dataset(self, dataset: Dataset) -> Dataset:
        """The one check of data given to a trained model, used by every command that takes data (evaluate, diagnose,
        encode, score, sample): ``x`` through :meth:`check_x` (flat rows of images reshaped to ``x_shape``; width,
        finiteness and the likelihood's range checked), labels through :meth:`check_y`. Returns ``dataset``, reshaped."""
        if isinstance(dataset.x, LazyRows):  # rows on disk stay there: one row for the shape, one streaming pass for values
            self.check_x(dataset.x[:1])  # each chunk is reshaped by check_x when a command reads it
            if nonfinite_rows(dataset.x):
                raise DataError("inputs have NaN or infinite values; remove or impute them first")
            if needs_unit_interval(self.config.likelihood) and not in_unit_interval(dataset.x):
                raise DataError(f"inputs leave [0, 1] but a {likelihood_name(self.config.likelihood)} likelihood needs [0, 1]; rescale them to [0, 1] like the training data (or train with --likelihood gaussian)")
        else:
            dataset.x = self.check_x(dataset.x).cpu().numpy()
        self.check_y(None if dataset.y is None else torch.from_numpy(dataset.y))
        return dataset

    def check_data(self, data: TrainData) -> None:
        """Refuse data the model cannot fit (wrong shape, range, missing labels) with one clear line."""
        self.check_x(data.train.x[:1])
        if needs_unit_interval(self.config.likelihood) and not in_unit_interval(data.train.x):
            raise DataError(f"training data leaves [0, 1] but the likelihood is {likelihood_name(self.config.likelihood)}; use --likelihood gaussian or rescale the data")
        if self.needs_labels and data.train.num_labeled == 0:
            raise DataError(f"model {self.name!r} needs labels, but the training data has none; pass --labels N with labeled data")
        if isinstance(self, CanClassify) and data.train.y is not None and data.train.num_labeled == 0:
            k = data.num_classes  # --labels 0 on labeled data: refused as --labels 5 is, not trained into a blind classifier
            raise DataError(f"model {self.name!r} learns its classes from labels, but --labels 0 hides all of them; "
                            f"ask for at least {k} (one per class) or drop --labels")
        self.check_y(*(s.y for s in (data.train, data.valid, data.test) if s is not None))

    def check_y(self, *labels: torch.Tensor | None) -> None:
        """Refuse labels beyond the model's classes (a classifier would score them silently wrong)."""
        num_classes = getattr(self.config, "num_classes", None)
        top = max((int(y.max()) for y in labels if y is not None and len(y)), default=-1)
        if num_classes is not None and top >= num_classes:
            raise DataError(f"labels go up to {top} but model {self.name!r} has num_classes={num_classes}; "
                            f"give data labelled 0..{num_classes - 1} (or drop --set num_classes when training)")

    # ----- fitted state outside the weights ----------------------------------------------------------------
    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Fitted state outside ``state_dict`` (saved beside the weights, as tensors)."""
        return {}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`extra_tensors` saved."""
