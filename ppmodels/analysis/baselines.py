"""What a user would pick instead of a deep semi-supervised model: scikit-learn classifiers on the same labels.

The one place that builds the baselines ``ppmodels evaluate``, the demo and the benchmarks compare against:

``svc``                    an RBF support vector machine on the labeled examples alone, scikit-learn's defaults
                           (C=1, gamma="scale"): the untuned row;
``svc_tuned``              the same with C and gamma chosen by stratified cross-validation (:data:`SVC_C`, gamma
                           :data:`SVC_GAMMA` times the "scale" value);
``logistic_tuned``         standardised features and logistic regression, C chosen likewise (:data:`LOGISTIC_C`);
``label_spreading_tuned``  labels spread over a k-nearest-neighbour graph of every training example, labeled or not
                           (Zhou et al. 2004), k chosen likewise (:data:`SPREAD_K`): each fold hides its labeled
                           examples' labels, which stay in the graph as unlabeled points with everything else, and
                           is scored on them;
``label_spreading``        k = 10 without tuning (the baseline of the earlier results);
``svc_tuned_scaled``,      the tuned SVC and tuned label spreading on standardised features (each feature by its
``label_spreading_tuned_scaled``  mean and sd: the SVC's over its labeled examples, inside every fold; label
                           spreading's over every training example): what a model that standardises its inputs (M2 on
                           Gaussian data) is to be compared with, beside the raw-feature rows.

Each is fitted on exactly the labels it is given (a run's label budget: its training labels and those it held out to
select its epoch). Cross-validation uses :class:`~sklearn.model_selection.StratifiedKFold` with as many folds as the
smallest class has labels (at most :data:`MAX_FOLDS`, at least 2), scored by balanced accuracy; ties go to the first
setting of the grid. A class with a single label cannot be in both sides of any stratified split, so then nothing is
tuned: the tuned rows fall back to the defaults (C=1, gamma="scale"; k=10) and say so (``tuned: false``).
If a deep model does not beat these, it did not help.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import SVC

from ..data import UNLABELED, Split, map_rows
from ..metrics import balanced_accuracy

BASELINES = ("svc", "svc_tuned", "logistic_tuned", "label_spreading_tuned")
ALL_BASELINES = BASELINES + ("label_spreading", "svc_tuned_scaled", "label_spreading_tuned_scaled")
SVC_C = (0.1, 1.0, 10.0, 100.0, 1000.0)
SVC_GAMMA = (0.1, 0.3, 1.0, 3.0, 10.0)  # factors of scikit-learn's gamma="scale", 1 / (features x variance)
LOGISTIC_C = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
SPREAD_K = (3, 5, 10, 20, 40)
MAX_FOLDS = 5
#: label spreading builds a kNN graph over the training data; beyond this many examples it uses every labeled one
#: and a seeded sample of the unlabeled ones (MNIST's 50 000 take ~1 minute and ~2 GB otherwise)
MAX_SPREAD = 20_000


def flat(x) -> np.ndarray:
    x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    return x.reshape(len(x), -1)


def folds(y: np.ndarray, seed: int = 0) -> StratifiedKFold | None:
    """Stratified folds over labels ``y``: as many as the smallest class has labels, 2 to :data:`MAX_FOLDS`;
    ``None`` when a class has a single label (no stratified split can hold it on both sides)."""
    smallest = np.unique(y, return_counts=True)[1].min()
    if smallest < 2:
        return None
    return StratifiedKFold(n_splits=int(min(MAX_FOLDS, smallest)), shuffle=True, random_state=seed)


def scale_gamma(x: np.ndarray) -> float:
    """scikit-learn's ``gamma="scale"`` for features ``x``."""
    variance = float(x.var())
    return 1.0 / (x.shape[1] * variance) if variance > 0 else 1.0


def svc_grid(x: np.ndarray) -> dict:
    g = scale_gamma(x)
    return {"C": list(SVC_C), "gamma": [g * f for f in SVC_GAMMA]}


def logistic() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _untuned(reason: str) -> dict:
    return {"tuned": False, "reason": reason}


def _grid_search(estimator, grid: dict, x: np.ndarray, y: np.ndarray, seed: int):
    cv = folds(y, seed)
    if cv is None:
        return None, _untuned("a class has a single label, so no stratified fold can hold it out; scikit-learn's defaults")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(estimator, grid, cv=cv, scoring="balanced_accuracy").fit(x, y)
    params = {k.split("__")[-1]: float(v) for k, v in search.best_params_.items()}
    return search.best_estimator_, {"tuned": True, "params": params, "folds": cv.n_splits, "cv_balanced_accuracy": float(search.best_score_)}


def tuned_svc(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """``(fitted SVC, info)``: C and gamma by stratified cross-validation on ``(x, y)`` (all labeled)."""
    fitted, info = _grid_search(SVC(), svc_grid(x), x, y, seed)
    return (fitted if fitted is not None else SVC(gamma="scale").fit(x, y)), info


def tuned_scaled_svc(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """``(fitted pipeline, info)``: standardised features and an SVC, C and gamma as :func:`tuned_svc` (gamma relative
    to the standardised features' "scale" value, 1 / features); the scaler is refitted inside every fold."""
    grid = {f"svc__{k}": v for k, v in svc_grid(StandardScaler().fit_transform(x)).items()}
    fitted, info = _grid_search(make_pipeline(StandardScaler(), SVC()), grid, x, y, seed)
    return (fitted if fitted is not None else make_pipeline(StandardScaler(), SVC(gamma="scale")).fit(x, y)), info


def tuned_scaled_label_spreading(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """``(fitted pipeline, info)``: every row of ``x`` standardised (labels unread), then :func:`tuned_label_spreading`."""
    scaler = StandardScaler().fit(x)
    spread, info = tuned_label_spreading(scaler.transform(x), y, seed)
    return make_pipeline(scaler, spread), info


def tuned_logistic(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """``(fitted pipeline, info)``: standardised features, logistic regression's C by stratified cross-validation."""
    fitted, info = _grid_search(logistic(), {"logisticregression__C": list(LOGISTIC_C)}, x, y, seed)
    if fitted is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = logistic().fit(x, y)
    return fitted, info


class TableSpreading(LabelSpreading):
    """``LabelSpreading(kernel="knn")`` whose graph is read from ``table``, each row's nearest rows of the data it is
    fitted on, itself first (:func:`neighbour_table`, at least ``n_neighbors`` wide), instead of a new neighbour search
    at every fit: tuning k over folds is then one search of the data instead of one per fold and k (on MNIST's 50 000
    images about a minute each). The graph is the one scikit-learn builds (``kneighbors_graph`` in connectivity mode)
    up to the order of rows at equal distance. Predicting new rows searches as scikit-learn does (its search tree is
    built on the first prediction, not at every fit: the folds of tuning never predict)."""

    _parameter_constraints = {**LabelSpreading._parameter_constraints, "table": [np.ndarray, None]}

    def __init__(self, kernel="knn", *, gamma=20, n_neighbors=7, alpha=0.2, max_iter=30, tol=1e-3, n_jobs=None, table=None):
        super().__init__(kernel=kernel, gamma=gamma, n_neighbors=n_neighbors, alpha=alpha, max_iter=max_iter, tol=tol, n_jobs=n_jobs)
        self.table = table

    def _get_kernel(self, X, y=None):
        if y is not None or self.table is None:
            return super()._get_kernel(X, y)
        n, k = len(X), self.n_neighbors
        if self.table.shape[0] != n or self.table.shape[1] < k:
            raise ValueError(f"the neighbour table is {self.table.shape[0]} x {self.table.shape[1]}; fitting {n} rows with k={k} needs {n} x {k} or wider")
        return sparse.csr_matrix((np.ones(n * k), self.table[:, :k].ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def neighbour_table(x: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest rows of ``x`` to each of its rows, itself first, nearest first (``n x k`` indices)."""
    return NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x, return_distance=False)


def spreading(k: int, table: np.ndarray | None = None) -> LabelSpreading:
    return TableSpreading(kernel="knn", n_neighbors=k, max_iter=100, table=table)


def _spread(k: int, x: np.ndarray, y: np.ndarray, table: np.ndarray | None = None) -> LabelSpreading:
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):  # a component without a label: 0/0
        warnings.simplefilter("ignore", ConvergenceWarning)
        return spreading(min(k, len(x) - 1), table).fit(x, y)


def spreading_cv_scores(x: np.ndarray, y: np.ndarray, seed: int = 0, table: np.ndarray | None = None) -> tuple[dict[int, float], int] | None:
    """Mean balanced accuracy of label spreading for each k of :data:`SPREAD_K` over stratified folds of the labeled
    rows of ``y`` (``UNLABELED`` elsewhere): each fold's labels are hidden (those rows stay in the graph) and
    predicted. ``table``: :func:`neighbour_table` of ``x``, searched here when not given. ``None`` when a class has
    a single label."""
    labeled = np.flatnonzero(y != UNLABELED)
    cv = folds(y[labeled], seed)
    if cv is None:
        return None
    table = neighbour_table(x, min(max(SPREAD_K), len(x) - 1)) if table is None else table
    scores = {}
    for k in SPREAD_K:
        fold_scores = []
        for _, held in cv.split(labeled, y[labeled]):
            hidden = y.copy()
            hidden[labeled[held]] = UNLABELED
            predicted = _spread(k, x, hidden, table).transduction_[labeled[held]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # a class predicted that the fold lacks
                fold_scores.append(balanced_accuracy_score(y[labeled[held]], predicted))
        scores[k] = float(np.mean(fold_scores))
    return scores, cv.n_splits


def tuned_label_spreading(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """``(fitted LabelSpreading, info)``: k by :func:`spreading_cv_scores`, then fitted on every label of ``y``."""
    labeled = y != UNLABELED
    if folds(y[labeled], seed) is None:
        return _spread(10, x, y), _untuned("a class has a single label, so no stratified fold can hold it out; k=10")
    table = neighbour_table(x, min(max(SPREAD_K), len(x) - 1))  # one search for every fold, k and the final fit
    scores, n = spreading_cv_scores(x, y, seed, table)
    best = max(scores, key=lambda k: (scores[k], -SPREAD_K.index(k)))
    return _spread(best, x, y, table), {"tuned": True, "params": {"n_neighbors": best}, "folds": n, "cv_balanced_accuracy": scores[best]}


def fit_baselines(train: Split, names: tuple[str, ...] = BASELINES, max_spread: int | None = MAX_SPREAD, seed: int = 0) -> dict[str, tuple]:
    """``{name: (fitted estimator, info)}`` for each baseline in ``names``, fitted on ``train`` (hidden labels are
    -1). Label spreading uses every labeled example and, beyond ``max_spread`` examples (``None``: no cap), a seeded
    sample of the unlabeled ones."""
    unknown = sorted(set(names) - set(ALL_BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; use {', '.join(ALL_BASELINES)}")
    y = train.y.numpy()
    labeled = y != UNLABELED
    spreads = any(n.startswith("label_spreading") for n in names)
    keep = np.arange(len(y)) if spreads else np.flatnonzero(labeled)  # the rows a baseline uses
    if spreads and max_spread is not None and len(y) > max_spread:
        rng = np.random.default_rng(seed)
        unlabeled = np.flatnonzero(~labeled)
        keep = np.sort(np.concatenate([np.flatnonzero(labeled), rng.choice(unlabeled, max_spread - labeled.sum(), replace=False)]))
    rows = train.x[keep] if len(keep) < len(y) else train.x[:]  # on disk (LazyRows), only these rows are read
    x, y, labeled = flat(rows), y[keep], labeled[keep]
    builders = {"svc": lambda: (SVC(gamma="scale").fit(x[labeled], y[labeled]), {"tuned": False, "params": {"C": 1.0, "gamma": "scale"}}),
                "svc_tuned": lambda: tuned_svc(x[labeled], y[labeled], seed),
                "logistic_tuned": lambda: tuned_logistic(x[labeled], y[labeled], seed),
                "label_spreading_tuned": lambda: tuned_label_spreading(x, y, seed),
                "label_spreading": lambda: (_spread(10, x, y), {"tuned": False, "params": {"n_neighbors": 10}}),
                "svc_tuned_scaled": lambda: tuned_scaled_svc(x[labeled], y[labeled], seed),
                "label_spreading_tuned_scaled": lambda: tuned_scaled_label_spreading(x, y, seed)}
    return {name: builders[name]() for name in names}


def baseline_predictions(train: Split, x_test, names: tuple[str, ...] = BASELINES, max_spread: int | None = MAX_SPREAD,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Predictions on ``x_test`` of each baseline in ``names`` fitted on ``train`` (:func:`fit_baselines`)."""
    return {name: predict_rows(estimator, x_test) for name, (estimator, _) in fit_baselines(train, names, max_spread, seed).items()}


def predict_rows(estimator, x) -> np.ndarray:
    """``estimator.predict`` on the rows ``x`` (on disk: a chunk at a time). Label spreading's kNN graph gives a row
    whose neighbours all lie in a component without a label probabilities 0/0: such a row gets class 0, as at fit."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(map_rows(lambda xb: estimator.predict(flat(xb)), x))


def baseline_scores(train: Split, test: Split, seed: int = 0, names: tuple[str, ...] = BASELINES) -> dict[str, dict]:
    """Accuracy, balanced accuracy and the chosen settings on ``test``'s labeled rows of each baseline fitted on
    ``train`` (hidden labels are -1)."""
    y = train.y.numpy()
    labeled = y != UNLABELED
    if labeled.sum() < 2 or len(np.unique(y[labeled])) < 2:
        return {}
    test = test.subset(test.y >= 0)
    y_test = test.y.numpy()
    scores = {}
    for name, (estimator, info) in fit_baselines(train, names, seed=seed).items():
        p = predict_rows(estimator, test.x)
        scores[name] = {"accuracy": float((p == y_test).mean()), "balanced_accuracy": balanced_accuracy(y_test, p), **info}
    return scores
