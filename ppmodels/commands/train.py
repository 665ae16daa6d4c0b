"""``ppmodels train``: a registered model fitted on a data spec, into a run folder that can be resumed and reloaded."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from ..metrics import classification_report, clustering_accuracy, no_labels_note
from ..analysis.sample_quality import QualityLog, generator_quality
from ..data import MIN_SELECTION_PER_CLASS, Split, TrainData, map_rows, open_data
from ..errors import ConfigError, Interrupted, PPModelsError, RunError, TrainingError, check_int
from ..files import read_json, write_json
from ..infer import ProgressBar, TrainConfig, fit, fit_cv
from ..infer.distributed import barrier, is_main, resolve_device, world
from ..infer.preemption import stop_on_signals
from ..models import CanClassify, CanCluster, PPModel, get_model_class
from ..plugins import config_entry, import_plugins, require_plugins
from ..runs import (CONFIG, METRICS, SUMMARY, BestCheckpoint, MetricsLog, SampleGrid, build_model, check_model_memory, check_run_dir,
                    data_locations, located_data, peak_memory_mb, resume_dir, run_dir_transaction, run_lock, save_model,
                    saved_selection, start_gmvae_from_runs, versions, work_dir)
from ..runs.lock import HOLDER_ENV
from ..models.m1m2 import M1M2
from ..models.gmvae import GMVAE
from .diagnose import read_metrics

DATA_OPTIONS = ("spec", "data_dir", "labels", "binarize", "max_per_class")


def train(model_name: str, data: str = "digits", out: str | Path = "runs/latest", *, data_dir: str | None = None,
          download: bool = False, labels: int | None = None, binarize: str = "none", max_per_class: int | None = None,
          train_config: TrainConfig | None = None, model_options: dict[str, Any] | None = None, overwrite: bool = False,
          resume: bool = False, progress: bool = True, sample_every: int = 10, plugins: list[str] | None = None,
          device: str = "cpu", valid_labels: int | None = None, valid_data: str | None = None, protocol: str = "budget",
          callbacks: list | None = None):
    """Train a registered model on a data spec and write a run folder; returns ``(model, summary)``.

    With ``resume=True`` everything (model, data, training options) is read back from ``out/config.json``
    and training continues from ``out/checkpoints/last.pt``. ``plugins`` (``.py`` files or module names) are
    imported first so that user models they register can be named (see :mod:`ppmodels.plugins`). ``device``:
    ``cpu``, ``cuda``, ``cuda:N`` or ``auto``. Under a ``torch.distributed`` process group every rank calls this
    and trains its share (docs/distributed.md); rank 0 alone writes the run folder and gets the summary, the
    other ranks get ``{}``.

    Selection stays within the label budget (:func:`~ppmodels.data.prepare_data`): with few labels (``labels``, or a
    partly labeled file) ``valid_labels`` of them (default: a fifth of each class's when that is at least
    3 a class, i.e. from 13 labels a class, for models that pick their epoch by validation accuracy; none for the others, or with fewer labels) are held out of training to choose the kept epoch;
    ``valid_data`` names a labeled validation file to use whole instead; ``protocol="paper"`` uses the validation
    split's labels, outside the budget (for comparison with published results). ``train_config.select_by="cv"``
    holds nothing out: the number of epochs is cross-validated over the training labels and the model trained again
    on all of them (:mod:`ppmodels.infer.crossval`; the folds' curves in ``cv.json``).

    ``callbacks``: trainer callbacks (``on_epoch_end(trainer, record)``, see :mod:`ppmodels.infer.callbacks`) added to
    the run's own, e.g. to score every epoch on data of your own; with ``select_by="cv"`` they see the refit.
    """
    import_plugins(plugins)
    check_arguments(labels, max_per_class, train_config, model_options)
    check_int(valid_labels, "valid_labels", minimum=0, optional=True)
    resolve_device(device)  # a GPU asked for where there is none is refused before anything is written
    out = check_run_dir(out, overwrite=overwrite, resume=resume)
    min_selection = MIN_SELECTION_PER_CLASS
    if resume:
        saved = read_json(resume_dir(out) / CONFIG)  # an interrupted --overwrite's replacement, if it left one
        asked = model_name
        require_plugins(saved.get("plugins"), saved.get("model"))
        model_name, (_, _, labels, binarize, max_per_class), train_config = saved_options(saved, out / CONFIG)
        selection = saved_selection(saved["data"])
        protocol, valid_labels, valid_data = selection["protocol"], selection["valid_labels"], selection["valid_data"]
        min_selection = selection["min_selection_per_class"]
        data, saved_dir, _ = located_data(saved["data"], resume_dir(out))  # from wherever the run folder is now
        data_dir = data_dir or saved_dir
        if asked != model_name:
            raise RunError(f"{out} is a run of model {model_name!r}, not {asked!r}; resume it as `ppmodels train {model_name} --out {out} --resume`")
    train_config = train_config or TrainConfig()
    cls = get_model_class(model_name)
    if train_config.select_by == "cv" and not resume:
        valid_labels = check_cv(cls, train_config, valid_labels, valid_data, protocol)
    if valid_labels is None and not resume and not selects_with_labels(cls, train_config):
        valid_labels = 0  # a model that keeps its epoch by the ELBO would waste labels held out for selection
    bundle = open_data(data, data_dir, download, labels, binarize, max_per_class, train_config.seed, protocol=protocol,
                       valid_labels=valid_labels, valid_data=valid_data, legacy_split=resume and "test_labels" not in saved["data"],
                       min_selection_per_class=min_selection)
    pyro.set_rng_seed(train_config.seed)  # the initial weights follow the seed, not whatever ran before in this process
    if not resume:
        model_config = cls.config_from_data(bundle.dataset, **(model_options or {}))
        check_model_memory(cls, model_config)  # before any weight is allocated (and before the seed below)
        pyro.set_rng_seed(train_config.seed)
    model = build_model(saved) if resume else cls(model_config)
    if isinstance(model, GMVAE) and not resume:
        start_gmvae_from_runs(model)
    model.check_data(bundle)
    initial = saved.get("initial_elbo") if resume else initial_elbo(model, bundle)
    barrier()  # every rank has checked the folder before rank 0 creates or replaces it
    main = is_main()
    # rank 0 alone touches the folder (locked); an --overwrite builds the new run beside the old one, which it
    # replaces only when the new run succeeded; other ranks of a run started by `train --devices N` join the lock
    transaction = run_dir_transaction(out, overwrite=overwrite, resume=resume) if main else worker_lock(out, work_dir(out, overwrite, resume))
    user_out = out
    with transaction as out:  # only now: a failed request leaves no folder
        if main and not resume:
            write_json(out / CONFIG, {
                "model": model.name, "model_config": dataclasses.asdict(model.config), "train": dataclasses.asdict(train_config),
                "data": {**dict(zip(DATA_OPTIONS, (data, data_dir, labels, binarize, max_per_class))), **data_locations(data, data_dir, out), **cube_record(bundle),
                         "protocol": protocol, "valid_labels": valid_labels, "valid_data": valid_data, "min_selection_per_class": min_selection,
                         "test_labels": bundle.dataset.metadata.get("test_labels")},
                "seed": train_config.seed, "initial_elbo": initial, **launch_record(device),
                **config_entry(cls),
            })
        callbacks = [ProgressBar(disable=not progress), MetricsLog(out), BestCheckpoint(out), *(callbacks or [])]
        if not model.has_elbo and bundle.dataset.y is not None and not bundle.dataset.partly_labeled:
            callbacks.insert(1, QualityLog(bundle.dataset, seed=train_config.seed))  # no ELBO to log: the Frechet distance instead
        if sample_every and bundle.dataset.is_image:
            callbacks.append(SampleGrid(out, every=sample_every, seed=train_config.seed))
        barrier()
        start = time.perf_counter()
        try:
            with stop_on_signals():  # SIGTERM / Ctrl-C: a checkpoint at the next step boundary, then Interrupted
                if train_config.select_by == "cv":
                    fit_cv(model, bundle, train_config, callbacks=callbacks, run_dir=out, resume=resume, device=device,
                           fold_callbacks=lambda i, k: [ProgressBar(disable=not progress)])
                else:
                    fit(model, bundle, train_config, callbacks=callbacks, run_dir=out, resume=resume, device=device)
        except Interrupted as exc:
            devices = f" --devices {world()[1]}" if world()[1] > 1 else ""
            raise Interrupted(f"{exc}; continue with `ppmodels train {model_name} --out {user_out} --resume{devices}`", exc.signum) from None
        if not main:
            return model, {}
        summary = summarize(model, bundle, wall_time=time.perf_counter() - start, seed=train_config.seed, run_dir=out, run_name=user_out)
        summary.update(launch_record(device))  # this launch's: a --resume may run on other processes or another device
        check_success(summary, initial, out)  # a diverged run is no success: it writes no weights and replaces nothing
        save_model(model, out)
        write_json(out / SUMMARY, summary)
    return model, summary


#: a finished run fails when its ELBO per datum ends this many times its own magnitude below the untrained model's
FAR_BELOW = 1.0


def initial_elbo(model, bundle: TrainData, rows: int = 1000) -> float | None:
    """The ELBO per datum of the untrained model on (the first ``rows`` of) the validation split, or of the training
    split without one: the reference :func:`check_success` holds a finished run to. Every random state is put back,
    so the run draws as it would without it; ``None`` when the model cannot score before it is fitted."""
    split = bundle.valid if bundle.valid is not None else bundle.train
    part = split.subset(np.arange(min(rows, len(split))))
    state = (random.getstate(), np.random.get_state())
    try:
        with torch.random.fork_rng(devices=[]):
            value = float(model.elbo_per_datum(part))
    except (PPModelsError, RuntimeError, ValueError, AttributeError, TypeError):  # a model that needs before_fit first
        value = None
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
    return value if value is not None and math.isfinite(value) else None


def check_success(summary: dict, initial: float | None, run: Path) -> None:
    """Refuse to call a run that diverged a success: its final ELBO (validation, else training) must be finite and
    not far below the untrained model's: ``final >= initial - FAR_BELOW * max(|initial|, 1)`` (for an initial ELBO
    of -200 nats, at least -400). Such a run writes no final weights; an ``--overwrite`` replaces nothing."""
    key = "valid_elbo" if "valid_elbo" in summary else "train_elbo"
    final = summary.get(key)
    if final is None:
        return
    floor = None if initial is None else initial - FAR_BELOW * max(abs(initial), 1.0)
    if math.isfinite(final) and (floor is None or final >= floor):
        return
    why = "is not finite" if not math.isfinite(final) else f"is far below the untrained model's {initial:.4g} (the floor is {floor:.4g})"
    raise TrainingError(f"training diverged: the final {key.replace('_', ' ').replace('elbo', 'ELBO')} per datum {final:.4g} {why}, "
                        f"so the run is no success (no final weights written; an --overwrite replaced nothing; the checkpoints stay in {run}); "
                        f"lower --lr or add --clip-norm")


@contextmanager
def worker_lock(out: Path, work: Path):
    """A rank other than 0 joins the lock its launcher (``train --devices N``) holds, so a ``--resume`` started while
    it lives is refused; under another launcher rank 0's lock alone guards the folder."""
    if os.environ.get(HOLDER_ENV):
        with run_lock(out):
            yield work
    else:
        yield work


def launch_record(device: str) -> dict[str, Any]:
    """How the run trains: ``processes`` (1, or the data-parallel world size), ``device`` (where rank 0 trains:
    ``cpu``, ``cuda:0``, ...) and, under a process group, its ``backend`` (gloo or nccl)."""
    processes = world()[1]
    record = {"processes": processes, "device": str(resolve_device(device))}
    if processes > 1:
        record["backend"] = str(torch.distributed.get_backend())
    return record


def check_arguments(labels: Any, max_per_class: Any, train_config: Any, model_options: Any) -> None:
    """The Python API's arguments checked as the CLI's parser checks its options."""
    check_int(labels, "labels", minimum=0, optional=True)
    check_int(max_per_class, "max_per_class", minimum=1, optional=True)
    if train_config is not None and not isinstance(train_config, TrainConfig):
        raise ConfigError(f"train_config must be a ppmodels.TrainConfig, got {type(train_config).__name__}; e.g. TrainConfig(epochs=10)")
    if model_options is not None and not isinstance(model_options, dict):
        raise ConfigError(f"model_options must be a dict of model options, got {type(model_options).__name__}; e.g. {{'z_dim': 10}}")


def check_cv(cls, train_config: TrainConfig, valid_labels: int | None, valid_data: str | None, protocol: str) -> int:
    """``select_by=cv`` checked against the other selection options; returns ``valid_labels`` (0: every label trains)."""
    if not selects_with_labels(cls, train_config):
        raise ConfigError(f"select_by=cv scores a classifier on held-out labels; model {cls.name!r} trains none (use it with m2, adgm or m1m2)")
    given = [flag for flag, bad in (("--valid-labels", valid_labels), ("--valid-data", valid_data), ("--protocol paper", protocol == "paper")) if bad]
    if given:
        raise ConfigError(f"select_by=cv cross-validates the epoch count over the training labels and holds none out; drop {', '.join(given)}")
    return 0


def selects_with_labels(cls, train_config: TrainConfig) -> bool:
    """Whether a model of class ``cls`` may keep its epoch by validation accuracy (it trains a classifier in some stage:
    its class overrides ``trains_classifier``), so that labels held out for selection are used."""
    return train_config.select_by != "valid_elbo" and cls.trains_classifier is not PPModel.trains_classifier


def cv_selection(cv: dict, budget: int) -> dict:
    """summary.json's ``selection`` of a ``select_by=cv`` run: the labels that chose are the run's own training labels."""
    return {"protocol": "budget", "labels": cv["labels"],
            "source": f"{cv['folds']}-fold cross-validation over the {cv['labels']} training labels of the budget of {budget} (each fold's labels "
                      f"hidden from its run in turn, scored by balanced accuracy after every epoch); epoch {cv['chosen_epoch']} of {cv['epochs']} had "
                      f"the best mean score ({cv['mean_score']:.4f}); the model then trained on all {cv['labels']} for {cv['chosen_epoch']} epochs"}


def cube_record(bundle: TrainData) -> dict:
    """An image cube's transform and classes (``data.cube`` in config.json), which ``ppmodels predict`` applies."""
    record = bundle.dataset.metadata.get("cube")
    return {"cube": record} if record else {}


def saved_options(saved: dict, source: Path) -> tuple[str, tuple, TrainConfig]:
    """The model name, data options and training config a run folder's ``config.json`` recorded, for ``--resume``."""
    try:
        cfg = saved["data"]
        return saved["model"], tuple(cfg[k] for k in DATA_OPTIONS), TrainConfig(**saved["train"])
    except (KeyError, TypeError) as exc:
        raise RunError(f"{source} lacks or garbles {exc} that --resume needs; the run folder is damaged, start again with --overwrite") from None
    except ConfigError as exc:  # e.g. an option edited by hand in config.json
        raise RunError(f"{source}: {exc} (in its \"train\" entry); fix that entry or start again with --overwrite") from None


def labeled_rows(split: Split | None) -> Split | None:
    """The labeled rows of ``split``, ``None`` when it has none."""
    return None if split is None or not split.num_labeled else split.subset(split.labeled)


def summarize(model, data: TrainData, wall_time: float, seed: int | None = None, run_dir: Path | None = None,
              run_name: str | Path | None = None) -> dict[str, Any]:
    """Final ELBOs per datum on each split, epochs, time, memory, test accuracy for classifiers (on the test split's
    labeled rows; without any, ``test_note`` says so and how to score the run ``run_name``), the seed and versions.
    A model without an ELBO (the GAN) gets the sample-quality yardstick on the test split instead, and ``warnings``
    when it collapsed, its discriminator won outright or its Frechet distance (``metrics.jsonl``) got worse."""
    state = getattr(model, "train_state_", None)
    budget = (data.labeled or data.train).num_labeled
    summary: dict[str, Any] = {"model": model.name, "data": data.dataset.spec, "num_labels": data.train.num_labeled, "budget_labels": budget,
                               "label_counts": data.label_counts(), "selection": dict(data.selection)}
    for name in ("train", "valid", "test"):
        split = getattr(data, name)
        if split is not None and model.has_elbo:
            summary[f"{name}_elbo"] = model.elbo_per_datum(split)
    if state is not None:
        balanced = "balanced " if state.accuracy_kind == "balanced" else ""  # a run resumed from before: plain
        kept = {"valid_accuracy": f"the best {balanced}validation accuracy ({state.best_valid_accuracy:.4f})",
                "valid_elbo": f"the best validation ELBO ({state.best_valid_elbo:.4f})",
                "train_elbo": f"the best training ELBO ({state.best_valid_elbo:.4f}; "
                              + ("no validation split)" if data.valid is None else "the model selects on training data)"),
                "last_epoch": "the last epoch (no likelihood, so no ELBO to select by)" if not model.has_elbo else "the last epoch",
                "cv": "the last epoch, of an epoch count chosen by cross-validation"}[state.selected_by]
        if state.selected_by == "cv":
            summary.update(cv=state.cv, selection=cv_selection(state.cv, budget))
        elif state.selected_by != "valid_accuracy":  # the labels were there, but the epoch was kept by an ELBO
            summary["selection"].update(labels=0, source=f"no labels: the {state.selected_by.replace('_', ' ').replace('elbo', 'ELBO')}")
        summary.update(epochs=state.epoch, best_epoch=state.best_epoch, selected_by=state.selected_by,
                       kept=f"weights of epoch {state.best_epoch}, {kept}", stopped_early=state.stopped_early,
                       skipped_batches=state.skipped_batches, train_time_s=round(state.elapsed, 2))
    test = labeled_rows(data.test)  # a partly labeled file's test split holds no label unless ?test_labels= asked for some
    if isinstance(model, CanClassify) and test is not None:
        report = classification_report(test.y.numpy(), np.asarray(map_rows(model.predict, test.x)), data.num_classes,
                                       model.imbalance_remedy, model.dispersal_remedy)
        summary.update({f"test_{key}": value for key, value in report.items()})
    elif isinstance(model, (CanClassify, CanCluster)) and data.dataset.y is not None:
        summary["test_note"] = no_labels_note(str(run_name or run_dir or "RUN"), "test", data.dataset.spec, data.dataset.partly_labeled)
    summary.update(model.fit_checks(data))
    if not model.has_elbo:
        records = read_metrics(run_dir) if run_dir is not None and (run_dir / METRICS).is_file() else None
        split = "test" if data.test is not None else "valid"
        quality, warnings = generator_quality(model, data.dataset, split, seed=seed or 0, checks=summary, records=records)
        if quality is not None:
            summary.update(sample_quality=quality, warnings=warnings)
    if isinstance(model, M1M2):  # M1+M2: the z1 dimensions its M2 models
        summary.update(active_dims=len(model.active_dims), latent_dims=int(model.m2.feature_mask.numel()))
    if isinstance(model, CanCluster) and test is not None:
        summary["test_cluster_accuracy"] = clustering_accuracy(test.y.numpy(), map_rows(model.cluster, test.x))
    summary.update(wall_time_s=round(wall_time, 2), peak_memory_mb=round(peak_memory_mb(), 1), seed=seed,
                   versions=versions())
    return summary


