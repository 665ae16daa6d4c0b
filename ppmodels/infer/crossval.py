"""The number of training epochs chosen by cross-validation over the training labels (``select_by="cv"``).

With few labels, holding some out to choose the kept epoch costs training labels, and the validation ELBO may
prefer epochs whose classifier is worse (docs/ssl.md, "Stability"). Cross-validation spends no label on selection:

1. the labeled training examples are split into ``K`` stratified folds (:func:`label_folds`);
2. for each fold, a copy of the untrained model trains the whole ``epochs`` budget with that fold's labels hidden
   (its examples stay as unlabeled data, as labels held out for selection do) and, after every epoch, the fold's
   labels score it by balanced accuracy (the mean recall over the fold's classes);
3. the epoch with the best mean score over the folds is chosen (ties: the earlier);
4. the model itself trains again on every label for exactly that many epochs of the same schedule, and keeps the last.

Every run is the one trainer's (:func:`~ppmodels.infer.fit`); the model is only asked for ``predict``,
``trains_classifier`` and to be rebuilt from its ``config`` (``type(model)(model.config)``, given its untrained
weights). With a run folder the folds' curves are written to ``cv.json`` as each fold ends, so a resumed run
(``ppmodels train --resume``) keeps the finished folds, trains an interrupted fold again from its start, and continues
an interrupted refit from its checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import signal
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from ..data import UNLABELED, Dataset, Split, TrainData, prepare_data
from ..errors import ConfigError, Interrupted, RunError
from ..files import read_json, write_json
from ..metrics import balanced_accuracy
from .trainer import CHECKPOINTS, TrainConfig, fit

CV_RECORD = "cv.json"  # inside a run folder: the folds' curves and the chosen epoch count
DEFAULT_FOLDS = 5


def label_folds(y: np.ndarray, folds: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """Positions (into ``y``, ``UNLABELED`` where hidden) of each fold's labels: ``folds`` stratified, disjoint folds that
    cover every label (``None``: 5, or the smallest class's label count when that is smaller)."""
    labeled = np.flatnonzero(y != UNLABELED)
    classes, counts = np.unique(y[labeled], return_counts=True)
    if not len(labeled):
        raise ConfigError("select_by=cv needs training labels to cross-validate; the training data has none")
    smallest = int(counts.min())
    k = min(DEFAULT_FOLDS, smallest) if folds is None else folds
    if smallest < 2 or k > smallest:
        c = classes[int(counts.argmin())]
        need = "at least 2" if folds is None or folds <= 2 else f"at least {folds} (cv_folds)"
        raise ConfigError(f"select_by=cv needs {need} training labels of every class, but class {c} has {smallest}; "
                          f"{'lower cv_folds, ' if folds is not None and smallest >= 2 else ''}give more labels or choose another select_by")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [np.sort(labeled[held]) for _, held in splitter.split(np.zeros(len(labeled)), y[labeled])]


def fold_data(data: TrainData, held: np.ndarray) -> TrainData:
    """The training data of one fold: the fold's labels hidden (their examples stay, unlabeled); the rest unchanged."""
    y = data.train.y.clone()
    y[torch.from_numpy(held)] = UNLABELED
    train = Split(data.train.name, data.train.x, y, data.train.binarize)
    return dataclasses.replace(data, train=train, labeled=train)


class FoldScore:
    """Trainer callback: the balanced accuracy of the fold's held-out labels after every epoch (``None`` in a stage
    that trains no classifier)."""

    def __init__(self, split: Split):
        self.split, self.scores = split, []

    def on_epoch_end(self, trainer, record: dict) -> None:
        model = trainer.model
        if not model.trains_classifier():
            self.scores.append(None)
            return
        # predict evaluates in eval mode and reads rows on disk a batch at a time, as for the trainer's validation labels
        self.scores.append(balanced_accuracy(self.split.y.numpy(), np.asarray(model.predict(self.split.x))))


def choose_epoch(curves: list[list[float | None]]) -> tuple[int, list[float | None]]:
    """The epoch (1-based) with the best mean score over the folds' curves (ties: the earlier), and the mean curve
    (``None`` at epochs some fold did not score)."""
    mean = [None if any(c[e] is None for c in curves) else float(np.mean([c[e] for c in curves])) for e in range(len(curves[0]))]
    chosen = _best(mean)
    if chosen is None:
        raise ConfigError("select_by=cv needs a model that trains a classifier (M2, the ADGM, M1+M2): no epoch of the folds could be scored")
    return chosen, mean


def fit_cv(model, data: TrainData | Dataset, train_config: TrainConfig, callbacks: list | None = None,
           run_dir: str | Path | None = None, resume: bool = False, device: str | None = None,
           fold_callbacks: Callable[[int, int], list] | None = None):
    """Train ``model`` with ``select_by="cv"`` (see the module's text); returns it, trained on every label for the
    chosen number of epochs, with ``model.train_state_.cv`` the record (also ``RUN/cv.json``).

    ``callbacks`` go to the refit only (the run's metrics and checkpoints); ``fold_callbacks(i, k)``, if given, makes
    extra callbacks for fold ``i`` of ``k`` (a progress bar). ``resume``: continue from ``run_dir``'s ``cv.json`` and
    checkpoint."""
    if isinstance(data, Dataset):
        data = prepare_data(data)
    if train_config.select_by != "cv":
        raise ConfigError(f"fit_cv is select_by=cv's; this config selects by {train_config.select_by}, use ppmodels.infer.fit")
    if train_config.lr_patience is not None:
        raise ConfigError("lr_patience lowers the rate when a validation score stops improving; select_by=cv keeps the last epoch of each "
                          "run, so there is none to watch: drop --lr-patience")
    if data.train.y is None:
        raise ConfigError("select_by=cv needs training labels to cross-validate; the data has none")
    folds = label_folds(data.train.y.numpy(), train_config.cv_folds, train_config.seed)
    run_dir = Path(run_dir) if run_dir is not None else None
    record = _start_record(folds, train_config, run_dir, resume)
    initial = copy.deepcopy(model.state_dict())  # every fold starts from the model's own untrained weights
    each = dataclasses.replace(train_config, select_by="last_epoch", patience=None)
    for i in range(len(record["curves"]), len(folds)):
        copy_ = type(model)(model.config)
        copy_.load_state_dict(initial)
        held = data.train.subset(torch.from_numpy(folds[i]))
        score = FoldScore(held)
        extra = fold_callbacks(i, len(folds)) if fold_callbacks is not None else []
        try:
            fit(copy_, fold_data(data, folds[i]), each, callbacks=[*extra, score], device=device)
        except Interrupted as exc:
            kept = f"the {i} finished fold(s) are kept in {run_dir / CV_RECORD}" if run_dir is not None and i else "no fold had finished"
            raise Interrupted(f"stopped by {signal.Signals(exc.signum).name} in cross-validation fold {i + 1} of {len(folds)}; {kept}, this fold trains "
                              f"again from its start", exc.signum) from None
        record["curves"].append(score.scores)
        record["fold_best_epochs"].append(_best(score.scores))
        _write(run_dir, record)
    record["chosen_epoch"], record["mean_curve"] = choose_epoch(record["curves"])
    record["mean_score"] = record["mean_curve"][record["chosen_epoch"] - 1]
    _write(run_dir, record)
    again = resume and run_dir is not None and (run_dir / CHECKPOINTS / "last.pt").is_file()  # the refit had begun
    fit(model, data, each, callbacks=callbacks, run_dir=run_dir, resume=again,
        device=device, stop_epoch=record["chosen_epoch"])
    model.train_state_ = dataclasses.replace(model.train_state_, selected_by="cv", cv=record)
    return model


def _best(scores: list[float | None]) -> int | None:
    """The epoch (1-based) of the best score (ties: the earlier); ``None`` when no epoch was scored."""
    scored = [(s, -e) for e, s in enumerate(scores) if s is not None]
    return -max(scored)[1] + 1 if scored else None


def _start_record(folds: list[np.ndarray], config: TrainConfig, run_dir: Path | None, resume: bool) -> dict:
    """A new record, or on ``resume`` the run folder's, whose finished folds are kept (refused if it does not match)."""
    record = {"folds": len(folds), "epochs": config.epochs, "metric": "balanced_accuracy", "fold_labels": [len(f) for f in folds],
              "labels": int(sum(len(f) for f in folds)), "curves": [], "fold_best_epochs": []}
    path = None if run_dir is None else run_dir / CV_RECORD
    if not resume or path is None or not path.is_file():
        return record
    saved = read_json(path)
    if any(saved.get(key) != record[key] for key in ("folds", "epochs", "fold_labels", "labels")):
        raise RunError(f"{path} records another cross-validation ({saved.get('folds')} folds of {saved.get('epochs')} epochs) than this run's "
                       f"config ({record['folds']} of {record['epochs']}); start again with --overwrite")
    record.update(curves=saved.get("curves", []), fold_best_epochs=saved.get("fold_best_epochs", []))
    return record


def _write(run_dir: Path | None, record: dict) -> None:
    if run_dir is not None:
        write_json(run_dir / CV_RECORD, record)
