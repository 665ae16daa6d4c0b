"""Evaluating a trained model on a held-out split: classification metrics, ELBO and importance-weighted bound.

:func:`evaluate` is what ``ppmodels evaluate`` calls. It refuses to let a degenerate classifier pass quietly: the
result carries ``warnings`` when the predictions collapse onto one class or the accuracy does not beat the
majority-class rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyro

from ..analysis.baselines import baseline_scores
from ..metrics import classification_metrics, no_labels_note
from ..analysis.sample_quality import generator_quality
from ..data import Dataset, Split, map_rows, parse_spec, select_split
from ..errors import ConfigError, check_int, check_seed
from ..files import read_json, write_json
from .diagnose import read_metrics
from ..models import CanClassify, CanSample, PPModel
from ..runs import CONFIG, METRICS, SUMMARY, check_output, check_particles_memory, load, open_applied_data, open_run_data, output_lock, record_output

EVALUATION = "evaluation.json"
SPLITS = ("test", "valid", "all")


def whole(dataset: Dataset) -> Split:
    """Every row of ``dataset`` as one split (rows on disk stay there)."""
    x, y = select_split(dataset, "all")
    return Split("all", x, y, binarize=dataset.binarize)


def evaluate(run_or_model: Any, data_spec: str | None = None, split: str = "test", iw_samples: int = 100, *,
             data_dir: str | None = None, out: str | Path | None = None, seed: int = 0, max_examples: int | None = None,
             baselines: bool = True, quality: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Evaluate a run folder (or a fitted model) on ``split`` of ``data_spec`` (default: the run's own data).

    Returns a dict with ``accuracy``, ``balanced_accuracy``, ``per_class_accuracy``, ``confusion_matrix``
    (classifiers on labeled data), ``elbo`` and ``iw_log_likelihood`` (per datum, the latter with ``iw_samples``
    importance samples; 0 skips it), ``num_examples``, ``split`` and ``warnings``; another image cube than the run's
    is standardised with the run's recorded transform. ``split="all"`` scores every row of the data (a separate
    test file); the classification metrics count its labeled rows (``num_labeled``); with none (the test split of a
    partly labeled file, whose labels all trained) ``note`` says so and how to score the run. For a classifier,
    ``baselines`` holds the accuracy of an untuned SVC and of an SVC, logistic regression and label spreading tuned by
    cross-validation, all fitted on the run's label budget (:mod:`ppmodels.analysis.baselines`), so one sees at once
    whether the deep model helped. For a run
    folder it also writes ``RUN/evaluation.json`` (or ``out``, a ``.json`` path: an existing file ppmodels did not
    write is replaced only with ``overwrite``, and never inside a run folder; see :mod:`ppmodels.runs.outputs`).
    For a model that samples, on fully labeled data, ``sample_quality`` holds the yardstick of
    :mod:`ppmodels.analysis.sample_quality` (Frechet distance, precision, recall, mode coverage; ``quality=False``
    skips it), and ``warnings`` says when the generator dropped classes, its discriminator won outright (from the
    run's summary) or its logged Frechet distance got worse. A model without a likelihood (the GAN) has no ELBO or
    log p(x): both read ``"not available"``.

    Example::

        ppmodels.train("m2", "digits", out="runs/m2", labels=50, train_config=TrainConfig(epochs=1, min_epoch_steps=0), model_options={"hidden": [64]},
                       progress=False)
        result = ppmodels.evaluate("runs/m2", iw_samples=10)
        result["accuracy"], result["warnings"]
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    check_int(iw_samples, "--iw-samples", minimum=0)
    check_seed(seed)
    check_int(max_examples, "max_examples", minimum=1, optional=True)
    if data_spec is not None:
        parse_spec(data_spec)  # a spec at all (not an array), before the run is loaded
    run = Path(run_or_model) if isinstance(run_or_model, (str, Path)) else None
    if run is None and not isinstance(run_or_model, PPModel):
        raise ConfigError(f"evaluate needs a run folder or a fitted ppmodels model, got {type(run_or_model).__name__}; "
                          "pass the --out folder of `ppmodels train` or a model from ppmodels.load")
    target = Path(out) if out is not None else None if run is None else run / EVALUATION
    if target is not None:
        check_output(target, (".json",), overwrite=overwrite, own=[] if run is None else [run / EVALUATION], command="evaluate", run=run)
    model = load(run) if run is not None else run_or_model
    run_config = read_json(run / CONFIG) if run is not None else {}
    data_options = run_config.get("data", {})
    spec = data_spec or data_options.get("spec")
    if not spec:
        raise ConfigError("no data to evaluate on: give a data spec (--data), the model's run names none")
    # the run's own data (held-out splits are never capped), or another spec binarized / standardised as the run's was
    dataset, own_data = open_applied_data(run_config, data_spec, data_dir, run)  # data_spec None: the run's own
    dataset = model.check_dataset(dataset)
    part = whole(dataset) if split == "all" else dataset.split(split)
    if max_examples is not None:
        part = part.subset(np.arange(min(max_examples, len(part))))
    pyro.set_rng_seed(seed)
    result: dict[str, Any] = {"model": model.name, "data": spec, "data_found": dataset.metadata.get("found", spec), "split": split,
                              "num_examples": len(part)}
    labeled = part if part.y is None else part.subset(part.y >= 0)
    if isinstance(model, CanClassify) and part.y is not None and len(labeled):
        result["num_labeled"] = len(labeled)
        result.update(classification_metrics(labeled.y.numpy(), np.asarray(map_rows(model.predict, labeled.x)), dataset.num_classes or 0,
                                             model.imbalance_remedy, model.dispersal_remedy))
        if baselines and run is not None:
            budget = open_run_data(run_config, dataset=dataset if own_data else None, data_dir=data_dir, run_dir=run)
            result["baselines"] = baseline_scores(budget.labeled or budget.train, labeled, seed=seed)
    elif isinstance(model, CanClassify):  # e.g. a partly labeled file's test split: every label trained
        result["note"] = no_labels_note(str(run or "RUN"), split, spec, own_data and dataset.partly_labeled)
    if not model.has_elbo:
        result["elbo"] = result["iw_log_likelihood"] = "not available"
    else:
        result["elbo"] = float(model.elbo_per_datum(part))
    if iw_samples and model.has_elbo:
        check_particles_memory(model.config.x_shape, iw_samples, min(500, len(part)), f"--iw-samples {iw_samples}", "ask for fewer --iw-samples")
        # rows on disk are scored a chunk at a time (every split of an in-memory dataset at once, as before)
        result["iw_log_likelihood"] = float(map_rows(lambda x: model.iw_log_likelihood(x, iw_samples), part.x).mean())
        result["iw_samples"] = iw_samples
    result.setdefault("warnings", [])
    if quality and isinstance(model, CanSample):
        checks = read_json(run / SUMMARY) if run is not None and (run / SUMMARY).is_file() else None
        records = read_metrics(run) if run is not None and (run / METRICS).is_file() else None
        scores, warnings = generator_quality(model, dataset, split, num_samples=min(len(part), 10_000), seed=seed, checks=checks, records=records)
        if scores is not None:
            result["sample_quality"] = scores
            result["warnings"] += warnings
    if target is not None:
        with output_lock(target):
            write_json(target, result)
            record_output(target, "evaluate", run)
    return result
