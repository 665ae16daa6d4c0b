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
from ..errors import ConfigError
from ..files import read_json, write_json
from ..models import CanClassify
from ..runs import CONFIG, load, open_for_run, open_run_data, open_run_dataset

EVALUATION = "evaluation.json"
SPLITS = ("test", "valid")


def evaluate(run_or_model: Any, data_spec: str | None = None, split: str = "test", iw_samples: int = 100, *,
             data_dir: str | None = None, out: str | Path | None = None, seed: int = 0, max_examples: int | None = None,
             baselines: bool = True) -> dict[str, Any]:
    """Evaluate a run folder (or a fitted model) on ``split`` of ``data_spec`` (default: the run's own data).

    Returns a dict with ``accuracy``, ``balanced_accuracy``, ``per_class_accuracy``, ``confusion_matrix``
    (classifiers on labeled data), ``elbo`` and ``iw_log_likelihood`` (per datum, the latter with ``iw_samples``
    importance samples; 0 skips it), ``num_examples``, ``split`` and ``warnings``; another image cube than the run's
    is standardised with the run's recorded transform. For a classifier evaluated on its
    run's own data, ``baselines`` holds the accuracy of an SVC and of label spreading trained on the same labeled
    examples (:mod:`ppmodels.analysis.baselines`), so one sees at once whether the deep model helped. For a run
    folder it also writes ``RUN/evaluation.json`` (or ``out``).

    Example::

        result = ppmodels.evaluate("runs/m2", iw_samples=50)
        result["accuracy"], result["warnings"]
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if iw_samples < 0:
        raise ConfigError(f"--iw-samples must be at least 0, got {iw_samples}")
    run = Path(run_or_model) if isinstance(run_or_model, (str, Path)) else None
    model = load(run) if run is not None else run_or_model
    run_config = read_json(run / CONFIG) if run is not None else {}
    data_options = run_config.get("data", {})
    spec = data_spec or data_options.get("spec")
    if not spec:
        raise ConfigError("no data to evaluate on: give a data spec (--data), the model's run names none")
    if spec == data_options.get("spec"):  # the run's own data, binarized as in training (held-out splits are never capped)
        dataset = open_run_dataset(run_config, data_dir)
    else:  # another image cube is standardised as the training scene was
        dataset = open_for_run(run_config, spec, data_dir or data_options.get("data_dir"))
    part = dataset.split(split)
    if max_examples is not None:
        part = part.subset(np.arange(min(max_examples, len(part))))
    pyro.set_rng_seed(seed)
    result: dict[str, Any] = {"model": model.name, "data": spec, "split": split, "num_examples": len(part)}
    model.check_y(part.y)
    if isinstance(model, CanClassify) and part.y is not None:
        result.update(classification_metrics(part.y.numpy(), np.asarray(model.predict(part.x)), dataset.num_classes or 0))
        if baselines and spec == data_options.get("spec"):
            result["baselines"] = baseline_scores(open_run_data(run_config, dataset=dataset).train, part, seed=seed)
    result["elbo"] = float(model.elbo_per_datum(part))
    if iw_samples:
        result["iw_log_likelihood"] = float(model.iw_log_likelihood(part.x, iw_samples).mean())
        result["iw_samples"] = iw_samples
    result.setdefault("warnings", [])
    if run is not None or out is not None:
        write_json(Path(out) if out is not None else run / EVALUATION, result)
    return result
