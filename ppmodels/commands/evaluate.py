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
from ..analysis.metrics import classification_metrics
from ..data import Dataset, Split, map_rows, parse_spec, select_split
from ..errors import ConfigError, check_int
from ..files import read_json, write_json
from ..models import CanClassify, PPModel
from ..runs import CONFIG, check_output, load, open_applied_data, open_run_data, record_output

EVALUATION = "evaluation.json"
SPLITS = ("test", "valid", "all")


def whole(dataset: Dataset) -> Split:
    """Every row of ``dataset`` as one split (rows on disk stay there)."""
    x, y = select_split(dataset, "all")
    return Split("all", x, y, binarize=dataset.binarize)


def evaluate(run_or_model: Any, data_spec: str | None = None, split: str = "test", iw_samples: int = 100, *,
             data_dir: str | None = None, out: str | Path | None = None, seed: int = 0, max_examples: int | None = None,
             baselines: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Evaluate a run folder (or a fitted model) on ``split`` of ``data_spec`` (default: the run's own data).

    Returns a dict with ``accuracy``, ``balanced_accuracy``, ``per_class_accuracy``, ``confusion_matrix``
    (classifiers on labeled data), ``elbo`` and ``iw_log_likelihood`` (per datum, the latter with ``iw_samples``
    importance samples; 0 skips it), ``num_examples``, ``split`` and ``warnings``; another image cube than the run's
    is standardised with the run's recorded transform. ``split="all"`` scores every row of the data (a separate
    test file); the classification metrics count its labeled rows (``num_labeled``). For a classifier,
    ``baselines`` holds the accuracy of an untuned SVC and of an SVC, logistic regression and label spreading tuned by
    cross-validation, all fitted on the run's label budget (:mod:`ppmodels.analysis.baselines`), so one sees at once
    whether the deep model helped. For a run
    folder it also writes ``RUN/evaluation.json`` (or ``out``, a ``.json`` path: an existing file ppmodels did not
    write is replaced only with ``overwrite``, and never inside a run folder; see :mod:`ppmodels.runs.outputs`).

    Example::

        result = ppmodels.evaluate("runs/m2", iw_samples=50)
        result["accuracy"], result["warnings"]
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    check_int(iw_samples, "--iw-samples", minimum=0)
    check_int(max_examples, "max_examples", minimum=1, optional=True)
    if data_spec is not None:
        parse_spec(data_spec)  # a spec at all (not an array), before the run is loaded
    run = Path(run_or_model) if isinstance(run_or_model, (str, Path)) else None
    if run is None and not isinstance(run_or_model, PPModel):
        raise ConfigError(f"evaluate needs a run folder or a fitted ppmodels model, got {type(run_or_model).__name__}; "
                          "pass the --out folder of `ppmodels train` or a model from ppmodels.load")
    target = Path(out) if out is not None else None if run is None else run / EVALUATION
    if target is not None:
        check_output(target, (".json",), overwrite=overwrite, own=[] if run is None else [run / EVALUATION])
    model = load(run) if run is not None else run_or_model
    run_config = read_json(run / CONFIG) if run is not None else {}
    data_options = run_config.get("data", {})
    spec = data_spec or data_options.get("spec")
    if not spec:
        raise ConfigError("no data to evaluate on: give a data spec (--data), the model's run names none")
    # the run's own data (held-out splits are never capped), or another spec binarized / standardised as the run's was
    dataset, own_data = open_applied_data(run_config, spec, data_dir, run)
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
    result["elbo"] = float(model.elbo_per_datum(part))
    if iw_samples:
        # rows on disk are scored a chunk at a time (every split of an in-memory dataset at once, as before)
        result["iw_log_likelihood"] = float(map_rows(lambda x: model.iw_log_likelihood(x, iw_samples), part.x).mean())
        result["iw_samples"] = iw_samples
    result.setdefault("warnings", [])
    if target is not None:
        write_json(target, result)
        record_output(target, "evaluate")
    return result
