"""One trainer for every model: stochastic variational inference on the model's Pyro ELBO.

The model supplies minibatches (:meth:`~ppmodels.models.PPModel.training_batches`) and its differentiable
negative ELBO (:meth:`~ppmodels.models.PPModel.loss`: ``TraceEnum_ELBO.differentiable_loss`` of its Pyro pair);
the trainer owns the loop: Adam steps, validation ELBO (or accuracy), early stopping, the NaN guard, checkpoints
and resume, and it reports everything to callbacks. Models never loop, print or save, and this module imports no
model: it works with any object that has those methods.

Under an initialised ``torch.distributed`` process group (torchrun and the like) the same loop is data-parallel:
every rank draws the same global batch, trains on its slice through DDP, and every decision (the NaN guard, early
stopping, the validation scores, the train ELBO) is taken on all-reduced numbers, so all ranks agree; rank 0 alone
calls the callbacks and writes checkpoints. See docs/distributed.md and :mod:`ppmodels.infer.distributed`.

A model with several objectives (the GAN's discriminator and generator) names its parameter groups instead
(:meth:`~ppmodels.models.PPModel.parameter_groups`, each with its own Adam settings) and which of them each step
updates (:meth:`~ppmodels.models.PPModel.step_groups`, :meth:`~ppmodels.models.PPModel.group_loss`); the trainer
still owns the one optimizer (one Adam with a param group per name), its checkpoint, the NaN guard and resume. Such
a model without an ELBO (``has_elbo = False``) is not validated by one: every epoch is kept as the best so far, so
training ends on the last epoch and early stopping never fires.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import signal
import time
import warnings
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import numpy as np
import pyro
import torch

from ..config import Field, build_config, config_dataclass
from ..data import Dataset, LazyRows, TrainData, prepare_data
from ..errors import ConfigError, Interrupted, ResumeWarning, RunError, TrainingError
from ..files import load_checkpoint, load_state, save_checkpoint
from ..metrics import balanced_from_counts
from ..nets import PRECISIONS, precision
from .preemption import stop_requested, watching
from .distributed import LossModule, all_sum, barrier, gather, noise_seed, rank_slice, resolve_device, world, wrap

CHECKPOINTS = "checkpoints"  # the folder, inside a run folder, of last.pt (resume state) and best.pt
SELECT_BY = ("auto", "valid_accuracy", "valid_elbo", "last_epoch", "cv")
PRECISION_NAMES = tuple(PRECISIONS)
AVERAGE_STAGES = ("all", "final")  # TrainConfig.average_stages
# steps an epoch takes at least while a model trains a classifier (min_epoch_steps=None): on digits (1257 images,
# 13 batches of 100) one pass gave M2's classifier 1300 steps in 100 epochs, too few for its 50 labels
# (11% test error, against 8.3% after 11,000 steps; docs/ssl.md); on MNIST one pass is already 500 steps
CLASSIFIER_EPOCH_STEPS = 100


@config_dataclass
class TrainConfig:
    """The trainer's options (each one is also an option of ``ppmodels train``: ``lr`` is ``--lr``)."""

    epochs: int = Field(100, ge=1, description="maximum passes over the training data.")
    batch_size: int = Field(100, ge=1, description="minibatch size.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    patience: int | None = Field(20, ge=1, description="stop after this many epochs without a better validation score "
                                 "(``select_by``; ``None``: never).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds Pyro, torch and the batch order (and the data split and the initial weights of "
                      "``ppmodels train``).")
    checkpoint_every: int = Field(1, ge=1, description="write ``checkpoints/last.pt`` every this many epochs.")
    clip_norm: float | None = Field(None, gt=0, description="clip the gradient norm to this value (``None``: no clipping).")
    skip_nonfinite: bool = Field(False, description="skip a batch whose loss or gradient is not finite (counted in the metrics) "
                                 "instead of stopping.")
    select_by: Literal[SELECT_BY] = Field("auto", description="which epoch's weights to keep (and what early stopping watches): "
                                          "``valid_accuracy`` (the balanced accuracy of the validation labels: the mean recall over "
                                          "their classes, so a class with 90% of them does not decide alone; ties broken by the "
                                          "ELBO), ``valid_elbo``, or ``auto``: that accuracy while "
                                          "a model trains a classifier and the validation split has labels (M2, M1+M2's second "
                                          "stage), else the ELBO. With few labels the up-weighted labeled terms can overfit late in "
                                          "training while the ELBO still improves, so classifiers keep their most accurate epoch. "
                                          "``last_epoch``: the last epoch, no early stopping. ``cv`` (models that train a classifier, "
                                          "with labels): cross-validate the number of epochs over ``cv_folds`` stratified folds of "
                                          "the training labels (each fold's run trains the whole budget with that fold's labels "
                                          "hidden and scores them after every epoch by balanced accuracy), then train again on every "
                                          "label for the epoch count with the best mean score and keep that last epoch "
                                          "(``ppmodels.infer.crossval``; costs ``cv_folds`` + 1 runs).")
    cv_folds: int | None = Field(None, ge=2, description="``select_by=cv``: the number of folds (``None``: 5, or fewer when a "
                                 "class has fewer training labels; at most the smallest class's count).")
    min_epoch_steps: int | None = Field(None, ge=0, description="an epoch chains passes over the training data until it has taken "
                                        "at least this many steps (``0``: one pass); ``None``: 100 while the model trains a "
                                        "classifier (M2, the ADGM, M1+M2's second stage), so that small data sets (digits: 13 "
                                        "batches a pass) give the labeled terms enough steps, else one pass.")
    lr_patience: int | None = Field(None, ge=1, description="multiply the learning rate by ``lr_factor`` after every this many "
                                    "epochs without a better validation score (``select_by``; the epochs early stopping counts), "
                                    "down to ``lr / 100``; a new training stage (M1+M2's M2) starts again at ``lr``. ``None``: a "
                                    "constant rate. Set it below ``patience`` for it to act before early stopping does.")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="the factor of ``lr_patience``.")
    precision: Literal[PRECISION_NAMES] = Field("fp32", description="what the networks compute in during training steps: "
                                                "``fp32``, or ``bf16`` (their matrix products in bfloat16 under ``torch.autocast``; "
                                                "weights, gradients, Adam, the likelihoods and the ELBO stay float32; validation, "
                                                "selection and everything reported afterwards run in float32). ``bf16`` makes an "
                                                "MNIST M2 step 1.8 times faster on a CPU with AVX512-BF16 (``benchmarks/speed.py``) "
                                                "and is slower where bfloat16 is emulated.")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also write ``checkpoints/last.pt`` after every this many "
                                               "steps (``None``: only at epoch ends), for long epochs; a run resumed from such a "
                                               "checkpoint continues the epoch exactly where it stopped.")
    average_epochs: int = Field(0, ge=0, description="above 0, the weights that are scored, selected and kept (and that "
                                "callbacks see at the end of each epoch) are an average of the weights at the ends of the "
                                "training stage's epochs: uniform over its first N, then exponential, each new epoch weighing "
                                "1/N (stochastic weight averaging: Izmailov et al. 2018; for semi-supervised models Athiwaratkun "
                                "et al. 2019). Training itself goes on from the last weights. It removes the epoch-to-epoch "
                                "jitter of a model that has levelled off, which more epochs do not (docs/ssl.md). Floating-point "
                                "buffers (batch-norm statistics) are averaged alike. 0: off, the last weights.")
    average_stages: Literal[AVERAGE_STAGES] = Field("all", description="with ``average_epochs``, which training stages average "
                                                    "their weights: ``all``, or ``final`` (only the last stage, M1+M2's M2: its M1 "
                                                    "is kept from its last weights, so M2 reads the codes a run without averaging "
                                                    "has). For a model with one stage the two are the same.")
    #: how a user sets a field (error messages name it so): ``--lr``, ``--batch-size``
    option_flag: ClassVar[str] = "--{dashed}"


@dataclasses.dataclass
class TrainState:
    """Everything about progress that a resumed run needs besides weights and optimizer."""

    epoch: int = 0
    step: int = 0
    best_valid_elbo: float = -math.inf
    best_valid_accuracy: float = -math.inf
    #: what ``valid_accuracy`` scores: ``balanced`` (a new run), or ``plain`` for a run resumed from a checkpoint
    #: written before selection was balanced, which goes on as it began
    accuracy_kind: str = "plain"
    best_epoch: int = 0
    selected_by: str = "valid_elbo"  # what chose best_epoch in the current stage
    epochs_without_improvement: int = 0
    skipped_batches: int = 0
    stopped_early: bool = False
    elapsed: float = 0.0
    stage: str = ""
    averaged_epochs: int = 0  # average_epochs: epoch ends in the current stage's weight average
    cv: dict | None = None  # select_by=cv: the cross-validation that chose the epoch count (ppmodels.infer.crossval)
    # a checkpoint written mid-epoch (a signal, checkpoint_every_steps): batches the epoch has drawn, its losses and
    # skipped batches so far, and the batch generator's state when the epoch began (to draw the same batches again)
    epoch_batches: int = 0
    epoch_losses: list = dataclasses.field(default_factory=list)
    epoch_skipped: int = 0
    epoch_generator: Any = None


class Trainer:
    """Runs SVI for any :class:`~ppmodels.models.PPModel` and reports to callbacks.

    :param config: a :class:`TrainConfig` (defaults when ``None``).
    :param callbacks: objects with any of ``on_train_start(trainer)``, ``on_step_end(trainer, loss)``,
        ``on_epoch_end(trainer, record)``, ``on_checkpoint(trainer)`` (after ``last.pt`` is written), ``on_best(trainer)``,
        ``on_train_end(trainer)``; under a process group only rank 0 calls them.
    :param device: where to train (``cpu``, ``cuda``, ``cuda:N``, ``auto``; ``None``: where the model is). A model
        moved for training is moved back to the CPU at the end.
    """

    def __init__(self, config: TrainConfig | None = None, callbacks: list | None = None, device: str | None = None,
                 stop_epoch: int | None = None):
        self.device = device
        self.stop_epoch = stop_epoch  # end after this epoch of the ``epochs`` schedule (a cross-validated refit); None: at ``epochs``
        self.config = build_config(TrainConfig, config)
        self.callbacks = list(callbacks or [])
        self.state = TrainState(accuracy_kind="balanced")
        self.model = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.run_dir: Path | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.average: dict[str, torch.Tensor] | None = None  # average_epochs: the stage's weight average (floating-point entries)
        self.saved_epoch: int | None = None  # epoch of the last checkpoint this trainer wrote or resumed from
        self.generator = torch.Generator()
        self.rank, self.world_size = 0, 1
        self.loss_fn = None  # the DDP module around the model's loss under a process group; None: the model's loss
        self.groups: dict[str, list[torch.nn.Parameter]] | None = None  # a multi-objective model's parameters by group

    # ----- the loop -------------------------------------------------------------------------------------------
    def fit(self, model, data: TrainData, run_dir: str | Path | None = None, resume: bool = False):
        if self.config.select_by == "cv":
            raise ConfigError("select_by=cv trains several models (one per fold, then a refit); call ppmodels.infer.crossval.fit_cv, "
                              "or ppmodels.train / `ppmodels train --select-by cv`")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.rank, self.world_size = world()
        self.model, self.data = model, self._rank_data(data)
        if self.device is not None:
            model.to(resolve_device(self.device))
        self.optimizer = self._make_optimizer(model)
        if model.updates_in_closed_form and self.world_size > 1:
            raise ConfigError(f"{model.name} updates its parameters in closed form (EM) in one process; train it with one process or by Adam (its option optimizer=adam)")
        pyro.set_rng_seed(noise_seed(self.config.seed, self.rank))  # Monte Carlo noise: a stream per rank
        self.generator.manual_seed(self.config.seed)  # batches: the same global batches on every rank
        if resume:
            self._restore()
        self.loss_fn = None  # under a process group, DDP around the model's loss (for each stage: see _enter_stage)
        self._emit("on_train_start")
        start = time.perf_counter() - self.state.elapsed
        self._stage = None
        while (self.state.epoch < self.last_epoch() or self.state.epoch_batches) and not self.state.stopped_early:  # epoch_batches: one stopped mid-way
            self._enter_stage()
            losses, skipped = self._run_epoch()
            with self.scored_weights():  # average_epochs: the average is scored, and callbacks see it
                record = self._score_epoch(losses, skipped)
                self.state.elapsed = time.perf_counter() - start
                record["elapsed"] = round(self.state.elapsed, 3)
                self._emit("on_epoch_end", record)
            if self.run_dir is not None and (self.state.epoch % self.config.checkpoint_every == 0 or self._done()):
                self.save_checkpoint()
                self._emit("on_checkpoint")
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)  # end on the selected epoch, as early stopping promises
        model.eval()
        if self.device is not None:
            model.to("cpu")
        self._emit("on_train_end")
        return model

    def _rank_data(self, data: TrainData) -> TrainData:
        """Under a process group, training rows left on disk as this rank reads them: only its share of each epoch
        (:meth:`~ppmodels.data.LazyRows.for_rank`)."""
        x = data.train.x
        if self.world_size == 1 or not isinstance(x, LazyRows):
            return data
        return dataclasses.replace(data, train=dataclasses.replace(data.train, x=x.for_rank(self.rank, self.world_size)))

    def _make_optimizer(self, model) -> torch.optim.Optimizer:
        """Adam over every parameter at ``lr``; for a model that names parameter groups, one Adam param group per name
        with the group's own settings (``lr`` by default), and :attr:`groups` set (one process only)."""
        groups = getattr(model, "parameter_groups", lambda: None)()
        if groups is None:
            self.groups = None
            return torch.optim.Adam(model.parameters(), lr=self.config.lr)
        if self.world_size > 1:
            raise ConfigError(f"model {model.name!r} trains several parameter groups, which the data-parallel trainer does not support; train it in one process")
        self._refuse_shared_lr(model, groups)
        self.groups = {group["name"]: list(group["params"]) for group in groups}
        return torch.optim.Adam([{"lr": self.config.lr, **{k: v for k, v in group.items() if k != "lr_option"}, "params": list(group["params"])}
                                 for group in groups])

    def _refuse_shared_lr(self, model, groups: list[dict]) -> None:
        """``lr`` (and ``lr_patience``) would be silently ignored by a model whose parameter groups set their own rates
        (the GAN's ``g_lr`` and ``d_lr``): refused in one line that names the model's options (``lr_option``)."""
        own = [group["lr_option"] for group in groups if "lr" in group and "lr_option" in group]
        if not own:
            return
        settings = " ".join(f"--set {name}=VALUE" for name in own)
        if self.config.lr != TrainConfig.__pydantic_fields__["lr"].default:
            raise ConfigError(f"option lr does not apply to model {model.name!r}: each of its networks has its own Adam rate ({', '.join(own)}); "
                              f"drop --lr and use {settings}")
        if self.config.lr_patience is not None and not self._has_elbo():
            raise ConfigError(f"option lr_patience does not apply to model {model.name!r}: it has no validation score to wait for; drop --lr-patience")

    def _has_elbo(self) -> bool:
        return getattr(self.model, "has_elbo", True)

    def _done(self) -> bool:
        return self.state.epoch >= self.last_epoch() or self.state.stopped_early

    def last_epoch(self) -> int:
        """The epoch training ends after: ``epochs``, or ``stop_epoch`` when that is earlier (the stages and everything
        else still follow the ``epochs`` schedule)."""
        return self.config.epochs if self.stop_epoch is None else min(self.stop_epoch, self.config.epochs)

    def _enter_stage(self) -> None:
        """Tell the model which training stage the next epoch is in; a new stage starts from the best weights of the
        last one, with early stopping restarted (M1+M2 trains its M1 first, then its M2)."""
        state = self.state
        stage = self.model.training_stage(state.epoch + 1, self.config.epochs)
        if stage == self._stage:
            return
        if state.stage and stage != state.stage:
            if self.best_weights is not None:
                self.model.load_state_dict(self.best_weights)
            state.best_valid_elbo, state.best_valid_accuracy, state.epochs_without_improvement, self.best_weights = -math.inf, -math.inf, 0, None
            self.average, state.averaged_epochs = None, 0  # the new stage averages its own epochs
            self._set_lr(self.config.lr)  # a plateau of the last stage says nothing about this one
        state.stage = self._stage = stage
        self.model.start_stage(stage, self.data)
        if self.world_size > 1:
            self.loss_fn = wrap(self.model, find_unused_parameters=self._leaves_parameters_unused())

    def _leaves_parameters_unused(self) -> bool:
        """Whether this stage's loss leaves some parameter without a gradient (M1+M2's M2 while its M1 trains, a
        Gaussian scale under a Bernoulli likelihood): DDP must then look for unused parameters every step. Probed
        on the stage's first batch, with every random state put back, so the run draws as it would without it."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        batches = self.generator.get_state()
        cuda = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), pyro_nan_warnings_off():
            batch = next(iter(self.model.training_batches(self.data.train, self.config.batch_size, self.generator)))
            try:
                loss = LossModule(self.model)(rank_slice(batch, self.rank, self.world_size))
                unused = any(g is None for g in torch.autograd.grad(loss, params, allow_unused=True))
            except ValueError:  # non-finite parameters (the NaN guard reports them at the first step): look every step
                unused = True
        self.generator.set_state(batches)
        return all_sum([float(unused)], self.model.device)[0] > 0

    def _run_epoch(self) -> tuple[list, int]:
        """Train one epoch (or the rest of one a mid-epoch checkpoint stopped); returns its batch losses and the
        number of batches skipped, and folds its weights into the ``average_epochs`` average."""
        model, state = self.model, self.state
        model.train()
        batches = self._resumed_batches() if state.epoch_batches else None  # a checkpoint written mid-epoch
        if batches is None:
            state.epoch += 1
            state.epoch_generator, state.epoch_losses, state.epoch_skipped = self.generator.get_state(), [], 0
            batches = self._epoch_batches()
        losses = state.epoch_losses
        for batch in batches:
            loss = self._step(batch)
            state.epoch_batches += 1
            if loss is None:
                state.epoch_skipped += 1
            else:
                losses.append(loss)
                state.step += 1
                self._emit("on_step_end", loss if isinstance(loss, dict) else loss / len(self.data.train))
            self._step_boundary(loss is not None)
        skipped, state.epoch_batches, state.epoch_generator, state.epoch_losses = state.epoch_skipped, 0, None, []
        state.skipped_batches += skipped
        self._check_parameters()
        if not losses:
            raise TrainingError(f"every batch of epoch {state.epoch} was non-finite and skipped; lower --lr or check the data")
        self._update_average()
        return losses, skipped

    def _score_epoch(self, losses: list, skipped: int) -> dict[str, Any]:
        """The epoch's record: training losses, validation scores (of the weights :meth:`scored_weights` puts in
        place), early stopping and the learning rate."""
        state = self.state
        record = {"epoch": state.epoch, "stage": state.stage, "step": state.step}
        if self.groups is None:
            record["train_elbo"] = -sum(losses) / len(losses) / len(self.data.train)
        else:  # each group's mean loss over the steps that updated it
            for name in self.groups:
                values = [loss[name] for loss in losses if name in loss]
                if values:
                    record[f"loss_{name}"] = sum(values) / len(values)
        if self.data.valid is not None and self._has_elbo():
            record["valid_elbo"] = self._valid_elbo()
            if self.selects_accuracy():
                record["valid_accuracy"] = self._valid_accuracy()
                record["valid_accuracy_kind"] = self.state.accuracy_kind  # metrics.jsonl of runs before this say nothing: plain
        self._update_early_stopping(record)
        record["lr"] = self.optimizer.param_groups[0]["lr"]  # the rate this epoch trained at
        self._reduce_lr_on_plateau()
        record.update(best_epoch=state.best_epoch, epochs_without_improvement=state.epochs_without_improvement, skipped_batches=skipped)
        return record

    def _update_average(self) -> None:
        """``average_epochs``: fold this epoch's weights into the stage's average, with weight ``1 / (n + 1)`` for the
        stage's ``n + 1``-th epoch while that is above ``1 / average_epochs``, then ``1 / average_epochs``."""
        if not self.config.average_epochs or not self._averages_stage():
            return
        weights = {name: value.detach() for name, value in self.model.state_dict().items() if value.is_floating_point()}
        n = self.state.averaged_epochs
        if self.average is None or n == 0:
            self.average = {name: value.clone() for name, value in weights.items()}
        else:
            share = max(1.0 / (n + 1), 1.0 / self.config.average_epochs)
            for name, value in weights.items():
                self.average[name].lerp_(value, share)
        self.state.averaged_epochs = n + 1

    def _averages_stage(self) -> bool:
        """Whether the current stage averages its weights (``average_stages``)."""
        return self.config.average_stages == "all" or self._in_final_stage()

    def _in_final_stage(self) -> bool:
        """Whether the current stage is the model's last (M1+M2's M2; a model with one stage: always)."""
        return self.state.stage == self.model.training_stage(self.config.epochs, self.config.epochs)

    @contextmanager
    def scored_weights(self):
        """With ``average_epochs``, the stage's weight average in the model for the duration (what is scored, selected,
        kept and shown to ``on_epoch_end`` callbacks), then the last weights back for training; else nothing changes."""
        if self.average is None:
            yield
            return
        last = {name: value.detach().clone() for name, value in self.model.state_dict().items() if name in self.average}
        self.model.load_state_dict(self.average, strict=False)
        try:
            yield
        finally:
            self.model.load_state_dict(last, strict=False)

    def _resumed_batches(self):
        """The rest of an epoch a mid-epoch checkpoint stopped: its batches drawn again from the epoch's first
        generator state, the ones already trained on skipped, then every random state put back as it was saved."""
        self.generator.set_state(self.state.epoch_generator)
        batches = self._epoch_batches()
        for _ in range(self.state.epoch_batches):
            next(batches)
        self._restore_rng(*self._saved_rng)
        self._saved_rng = None  # the checkpoint's payload, weights and all, is not kept
        return batches

    def _step_boundary(self, stepped: bool) -> None:
        """After a step: checkpoint every ``checkpoint_every_steps`` steps, and stop (after a checkpoint) when a signal
        asked to (:mod:`ppmodels.infer.preemption`); under a process group all ranks agree on stopping."""
        signum = stop_requested() if watching() else None
        if watching() and self.world_size > 1:  # one all-reduce per step, only while signals are watched
            count, total = all_sum([float(signum is not None), float(signum or 0)], self.model.device)
            signum = round(total / count) if count else None
        every = self.config.checkpoint_every_steps
        due = stepped and every is not None and self.state.step % every == 0
        if self.run_dir is not None and (due or signum):
            self._check_parameters()
            self.save_checkpoint()
            self._emit("on_checkpoint")
        if signum:
            where = f"epoch {self.state.epoch}, step {self.state.step}"
            saved = f"checkpoint {self.run_dir / CHECKPOINTS / 'last.pt'} written" if self.run_dir is not None else "no run folder, nothing saved"
            raise Interrupted(f"stopped by {signal.Signals(signum).name} at {where}; {saved}", signum)

    def _epoch_batches(self):
        """One epoch's batches: passes of the model's :meth:`training_batches` until ``min_epoch_steps`` (one pass
        when that is 0, or when a pass yields nothing)."""
        wanted, steps = self.min_epoch_steps(), 0
        while True:
            before = steps
            for batch in self.model.training_batches(self.data.train, self.config.batch_size, self.generator):
                steps += 1
                yield batch
            if steps >= wanted or steps == before:
                return

    def min_epoch_steps(self) -> int:
        """The least number of steps this epoch takes: ``min_epoch_steps``, or for ``None`` 100 while the model trains
        a classifier (its stage's), else 0 (one pass)."""
        if self.config.min_epoch_steps is not None:
            return self.config.min_epoch_steps
        return CLASSIFIER_EPOCH_STEPS if self.model.trains_classifier() else 0

    def _step(self, batch: dict) -> float | dict[str, float] | None:
        """One Adam step; returns the batch loss, or ``None`` when a non-finite batch was skipped. Under a process
        group the batch is the global one: this rank trains on its slice, and the returned loss is the global one.

        A model with parameter groups gets one update per group that :meth:`step_groups` names for this step, in its
        order, each on the group's loss for this batch after the updates before it; the losses come back by group
        name. A non-finite one skips the rest of the batch's updates (``skip_nonfinite``) or stops training."""
        if self.model.updates_in_closed_form:  # EM (PPCA): the model updates itself, no gradient
            return self.model.closed_form_step(batch)
        if self.groups is None:
            return self._update(batch, self.loss_fn or self.model.loss)
        values = {}
        for name in self.model.step_groups(self.state.step):
            value = self._update(batch, partial(self.model.group_loss, name), name)
            if value is None:
                return None
            self.model.after_group_step(name)
            values[name] = value
        return values

    def _update(self, batch: dict, loss_fn: Callable, group: str | None = None) -> float | None:
        """One Adam step on ``loss_fn(batch)``, of every parameter, or only of ``group``'s."""
        self.optimizer.zero_grad(set_to_none=True)
        batch = rank_slice(batch, self.rank, self.world_size)
        loss, problem = self._forward(batch, loss_fn, group)
        if self.world_size > 1:  # every rank learns whether any rank's loss failed before anyone calls backward
            total, failed = all_sum([0.0 if problem is not None else loss.item(), float(problem is not None)], self.model.device)
            if failed:
                return self._nonfinite("loss", problem, every_rank=True)
            value = total / self.world_size
        else:
            if problem is not None:
                return self._nonfinite("loss", problem)
            value = loss.item()
        loss.backward()
        if group is not None:  # a generator's loss reaches the discriminator too: Adam skips parameters without a gradient
            for other, params in self.groups.items():
                for p in params if other != group else ():
                    p.grad = None
        grads = [(name, p.grad) for name, p in self.model.named_parameters() if p.grad is not None]
        # one finiteness check per step, without autograd's anomaly mode: a gradient's norm is finite unless an entry
        # is not (or the squares overflow), and norms cost a thirtieth of isfinite(g).all(), 5 ms a step for a
        # 1.4M-weight VAE; entries are checked, and names worked out, only when a norm is not finite
        norms_finite = not grads or bool(torch.isfinite(torch.stack([g.norm() for _, g in grads])).all())
        bad = [] if norms_finite else [name for name, g in grads if not torch.isfinite(g).all()]
        if bad:
            more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
            return self._nonfinite("gradient", f"non-finite gradient of {', '.join(bad[:4])}{more}, while the loss was finite ({loss.item():.6g})")
        if self.config.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters() if group is None else self.groups[group], self.config.clip_norm)
        self.optimizer.step()
        return value

    def _forward(self, batch: dict, loss_fn: Callable, group: str | None = None) -> tuple[torch.Tensor | None, str | dict | None]:
        """The loss of this rank's batch and what went wrong: ``None`` (it is finite), a description, or the batch
        (its loss is not finite; the sites responsible are looked up only if training stops)."""
        try:
            with pyro_nan_warnings_off(), precision(self.config.precision):
                loss = loss_fn(batch)
        except ValueError as exc:  # a distribution's argument validation caught non-finite parameters before the loss did
            if "invalid values" not in str(exc):
                raise
            return None, f"a distribution got non-finite parameters: {str(exc).splitlines()[0].rstrip(':')}"
        if torch.isfinite(loss):
            return loss, None
        return loss, batch if group is None else f"the {group} loss"

    def _nonfinite(self, what: str, detail: str | dict | None, every_rank: bool = False) -> None:
        """Skip the batch (``skip_nonfinite``) or stop, naming where, which term, and the checkpoint that is still good.
        ``every_rank``: all ranks call this together; the message names the ranks whose slice failed."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.config.skip_nonfinite:
            return None
        if isinstance(detail, dict):  # a batch whose loss is not finite: find the sample sites responsible
            detail = f"terms: {nonfinite_terms(self.model, detail)}"
        if every_rank:
            found = [f"rank {rank}: {text}" for rank, text in enumerate(gather(detail)) if text is not None]
            detail = f"on {len(found)} of {self.world_size} ranks; " + "; ".join(found)
        where = f"epoch {self.state.epoch}, step {self.state.step + 1}"
        raise TrainingError(f"the {what} became non-finite at {where} ({detail}); {self._last_good()}; lower --lr, add --clip-norm, or pass --skip-nonfinite")

    def _last_good(self) -> str:
        last = self.run_dir / CHECKPOINTS / "last.pt" if self.run_dir is not None else None
        if last is None or not last.is_file():
            return "no checkpoint was written yet"
        epoch = f" (epoch {self.saved_epoch})" if self.saved_epoch is not None else ""
        # --resume keeps the run's options, so the fixes named after this (a lower --lr, ...) need a new start
        return f"the last good checkpoint is {last}{epoch}, left untouched (to change options, train again with --overwrite)"

    def _shard(self, split):
        """This rank's contiguous share of a split (all of it in one process)."""
        if self.world_size == 1:
            return split
        return split.subset(torch.arange(len(split)).tensor_split(self.world_size)[self.rank])

    def _train_elbo(self) -> float:
        """The ELBO per datum of one pass over the training split (each rank scores its share; the sums are
        all-reduced)."""
        if self.world_size == 1:
            return self.model.elbo_per_datum(self.data.train)
        shard = self._shard(self.data.train)
        total = self.model.elbo_per_datum(shard) * len(shard) if len(shard) else 0.0
        return all_sum([total], self.model.device)[0] / len(self.data.train)

    def _valid_elbo(self) -> float:
        """The validation ELBO (each rank scores its shard; the sums are all-reduced); a non-finite one stops
        training before the epoch is checkpointed."""
        shard = self._shard(self.data.valid)
        try:
            with pyro_nan_warnings_off():
                total = self.model.elbo_per_datum(shard, batch_size=max(self.config.batch_size, 500)) * len(shard) if len(shard) else 0.0
        except ValueError as exc:  # argument validation of a distribution fed non-finite parameters
            if "invalid values" not in str(exc):
                raise
            total = math.nan
        value = all_sum([total], self.model.device)[0] / len(self.data.valid)
        if not math.isfinite(value):
            raise TrainingError(f"the validation ELBO became non-finite after epoch {self.state.epoch} (the weights no longer give finite "
                                f"distributions); {self._last_good()}; lower --lr or add --clip-norm")
        return value

    def selects_accuracy(self) -> bool:
        """Whether this epoch is judged by validation accuracy (``select_by``, the model's stage, labeled validation data)."""
        choice, valid = self.config.select_by, self.data.valid
        if choice in ("valid_elbo", "last_epoch") or valid is None or valid.y is None or not bool((valid.y >= 0).any()):
            return False
        if choice == "valid_accuracy" and not self.model.trains_classifier() and self._in_final_stage():
            raise ConfigError(f"select_by=valid_accuracy needs a model that trains a classifier; {self.model.name!r} does not, use valid_elbo")
        return self.model.trains_classifier()

    def _valid_accuracy(self) -> float:
        """Balanced accuracy on the labeled validation examples: the mean over the classes present of the share of each
        class predicted right, so that with 90% of the held-out labels in one class an epoch that floods that class
        does not win (plain accuracy for a run resumed from before, :attr:`TrainState.accuracy_kind`). Hits and labels
        per class are counted on shards and all-reduced; rows on disk are read by predict, a batch at a time."""
        shard = self._shard(self.data.valid)
        labeled = shard.subset(shard.y >= 0)
        k = self.data.num_classes
        y = labeled.y.numpy()
        predicted = np.asarray(self.model.predict(labeled.x)) if len(labeled) else y
        counts = all_sum([*np.bincount(y[predicted == y], minlength=k), *np.bincount(y, minlength=k)], self.model.device)
        hits, support = np.array(counts[:k]), np.array(counts[k:])
        if self.state.accuracy_kind == "plain":
            return float(hits.sum() / support.sum())
        return balanced_from_counts(hits, support)

    def _check_parameters(self) -> None:
        """Refuse to go on (and to checkpoint) with weights that are no longer finite."""
        bad = [name for name, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise TrainingError(f"parameters {', '.join(bad[:4])} became non-finite in epoch {self.state.epoch}; {self._last_good()}; lower --lr or add --clip-norm")

    def _update_early_stopping(self, record: dict) -> None:
        state = self.state
        if not self._has_elbo() or self.config.select_by == "last_epoch":  # every epoch is the best so far: training keeps the last
            state.best_epoch, state.epochs_without_improvement, state.selected_by = state.epoch, 0, "last_epoch"
            self.best_weights = copy.deepcopy(self.model.state_dict())
            self._emit("on_best")
            return
        # a model that selects on its training likelihood is judged by one exact pass over the training data after the
        # epoch (the mean of its steps' losses mixes parameters of the whole epoch and unequal batches: noise of 0.1 nats)
        elbo = (self._train_elbo() if self.model.selects_on_training_data
                else record.get("valid_elbo", record["train_elbo"]))
        accuracy = record.get("valid_accuracy")
        if accuracy is not None:  # the most accurate epoch; among equally accurate ones, the best ELBO
            better = accuracy > state.best_valid_accuracy or (accuracy == state.best_valid_accuracy and elbo > state.best_valid_elbo)
        else:
            better = elbo > state.best_valid_elbo
        if better:
            state.best_valid_elbo, state.best_epoch, state.epochs_without_improvement = elbo, state.epoch, 0
            state.best_valid_accuracy = -math.inf if accuracy is None else accuracy
            state.selected_by = ("valid_accuracy" if accuracy is not None else "valid_elbo" if "valid_elbo" in record and not self.model.selects_on_training_data
                                 else "train_elbo")
            self.best_weights = copy.deepcopy(self.model.state_dict())
            self._emit("on_best")
        else:
            state.epochs_without_improvement += 1
            if self.config.patience is not None and state.epochs_without_improvement >= self.config.patience and self._in_final_stage():
                state.stopped_early = True

    def _reduce_lr_on_plateau(self) -> None:
        """``lr_patience``: after every ``lr_patience`` epochs without a better validation score, the rate times
        ``lr_factor`` (at least ``lr / 100``). Every rank sees the same all-reduced scores, so all agree."""
        patience, waited = self.config.lr_patience, self.state.epochs_without_improvement
        if patience is not None and waited > 0 and waited % patience == 0:
            self._set_lr(max(self.config.lr / 100, self.optimizer.param_groups[0]["lr"] * self.config.lr_factor))

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _emit(self, hook: str, *args: Any) -> None:
        if self.rank != 0:  # callbacks report and write: one process does
            return
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    # ----- checkpoints ----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/last.pt``: weights, optimizer, progress (early stopping too), best weights, every RNG
        state, of every rank under a process group (rank 0 writes; the others wait until it has)."""
        path = self.run_dir / CHECKPOINTS / "last.pt"
        states = gather(rng_states(self.generator))
        if self.rank == 0:
            save_checkpoint(path, {
                "model_name": self.model.name,
                "model_config": dataclasses.asdict(self.model.config),
                "model": self.model.state_dict(),
                "best_model": self.best_weights,
                "weight_average": self.average,
                "optimizer": self.optimizer.state_dict(),
                "state": dataclasses.asdict(self.state),
                "rng": states[0],
                "rng_ranks": states,
                "world_size": self.world_size,
            })
        barrier()
        self.saved_epoch = self.state.epoch - (1 if self.state.epoch_batches else 0)
        return path

    def _restore(self) -> None:
        path = self.run_dir / CHECKPOINTS / "last.pt"
        payload = load_checkpoint(path)
        saved_by = payload.get("model_name", self.model.name)
        if saved_by != self.model.name:
            raise RunError(f"checkpoint {path} was written by model {saved_by!r}, not {self.model.name!r}; it is from another run, start again with --overwrite")
        saved_config = payload.get("model_config")
        if saved_config is not None and saved_config != dataclasses.asdict(self.model.config):
            raise RunError(f"checkpoint {path} was written for another {self.model.name} config ({saved_config}); it does not match config.json, start again with --overwrite")
        try:
            load_state(self.model, payload["model"], path)
            self.optimizer.load_state_dict(payload["optimizer"])
            self.state = TrainState(**payload["state"])
            self.best_weights = payload["best_model"]
            self.average = payload.get("weight_average")  # absent: a checkpoint from before average_epochs
            self._saved_rng = (payload, path)
            if not self.state.epoch_batches:  # mid-epoch: once the epoch's batches are drawn again (_resumed_batches)
                self._restore_rng(payload, path)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunError(f"checkpoint {path} is incomplete or from another version ({type(exc).__name__}: {exc}); start again with --overwrite") from None
        self.saved_epoch = self.state.epoch - (1 if self.state.epoch_batches else 0)

    def _restore_rng(self, payload: dict, path: Path) -> None:
        """Every rank continues its own random streams when the world size is the one that wrote the checkpoint;
        under another world size the batch order continues and each rank's Monte Carlo noise starts afresh."""
        saved_world = payload.get("world_size", 1)
        states = payload.get("rng_ranks", [payload["rng"]])
        if saved_world == self.world_size:
            set_rng_states(states[self.rank], self.generator)
            return
        set_rng_states(states[0], self.generator)  # the shared streams (batches, labeled draws) continue
        pyro.set_rng_seed(noise_seed(self.config.seed, self.rank, epoch=self.state.epoch))
        if self.rank == 0:
            # rows left on disk are dealt out to the ranks, so each epoch's order depends on the process count
            order = ("the batch order of data left on disk depends on the process count (a checkpoint written mid-epoch: some rows of "
                     "that epoch may be trained on twice, others not)" if isinstance(self.data.train.x, LazyRows) else "the batch order continues")
            warnings.warn(f"{path} was written by {saved_world} process(es), this run has {self.world_size}: {order} "
                          "and the Monte Carlo noise streams start afresh, so the run will not repeat an uninterrupted one exactly",
                          ResumeWarning, stacklevel=2)


def fit(model, data: TrainData | Dataset, train_config: TrainConfig | None = None, callbacks: list | None = None,
        run_dir: str | Path | None = None, resume: bool = False, device: str | None = None, stop_epoch: int | None = None):
    """Train ``model`` on ``data`` with the shared :class:`Trainer`, between the model's ``before_fit`` and
    ``after_fit`` hooks; returns the model (scikit-learn's ``fit`` convention), with ``model.train_state_`` set.
    ``device``: where to train (``cpu``, ``cuda``, ``cuda:N``, ``auto``); the model comes back on the CPU. Under an
    initialised ``torch.distributed`` process group every rank calls this, and trains data-parallel. ``stop_epoch``:
    end after that epoch of the ``epochs`` schedule (a cross-validated refit, :mod:`ppmodels.infer.crossval`).

    Example::

        vae = ppmodels.fit(VAE(x_shape=[1, 8, 8], z_dim=4, hidden=[64], seed=0), load_dataset("digits"), TrainConfig(epochs=3))
    """
    if isinstance(data, Dataset):
        data = prepare_data(data)
    model.check_data(data)
    if not resume:
        model.before_fit(data)
    trainer = Trainer(train_config, callbacks or [], device=device, stop_epoch=stop_epoch)
    trainer.fit(model, data, run_dir=run_dir, resume=resume)
    model.train_state_ = trainer.state
    model.after_fit(data)
    return model


@contextmanager
def pyro_nan_warnings_off():
    """The NaN guard says in one line where a loss became non-finite; Pyro's "Encountered NaN" warnings would print
    the same news several lines long before it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
        yield


def rng_states(generator: torch.Generator) -> dict:
    """Every random state a training run draws from, as tensors and numbers (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "batches": generator.get_state(), "python": random.getstate(),
              "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # Monte Carlo noise drawn on the GPU
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])
    generator.set_state(states["batches"])
    if "python" in states:
        random.setstate(states["python"])
    if "numpy" in states:
        kind, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def nonfinite_terms(model, batch: dict) -> str:
    """Names of the sample sites whose log-probability is not finite for ``batch`` (a guide trace replayed in the model)."""
    from pyro import poutine

    try:
        with torch.no_grad(), pyro_nan_warnings_off():
            guide_trace = poutine.trace(model.guide).get_trace(**batch)
            model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(**batch)
        bad = []
        for label, trace in (("model", model_trace), ("guide", guide_trace)):
            for name, site in trace.nodes.items():
                if site["type"] == "sample" and not torch.isfinite(site["fn"].log_prob(site["value"]).sum()):
                    bad.append(f"{label} site {name!r}")
        return ", ".join(bad) or "the loss only (every site's log-probability is finite)"
    except Exception as exc:  # the model itself may fail on non-finite parameters
        return f"could not be traced ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
