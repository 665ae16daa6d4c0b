"""The baselines (ppmodels.analysis.baselines) against scikit-learn called directly on the same labels."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import SVC

from ppmodels.analysis import baselines
from ppmodels.data import UNLABELED, Split, prepare_data


@pytest.fixture(scope="module")
def budget():
    from ppmodels.data import load_dataset

    data = prepare_data(load_dataset("digits"), num_labels=30, seed=1)  # 3 labels a class: 3 folds
    x = data.labeled.x.reshape(len(data.labeled), -1).numpy()
    return data, x, data.labeled.y.numpy()


def test_tuned_svc_and_logistic_agree_with_grid_search(budget):
    data, x, y = budget
    lab = y != UNLABELED
    fitted = baselines.fit_baselines(data.labeled, ("svc", "svc_tuned", "logistic_tuned"), seed=0)
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    scale = 1 / (x.shape[1] * float(x[lab].var()))  # scikit-learn's gamma="scale"
    svc = GridSearchCV(SVC(), {"C": [0.1, 1, 10, 100, 1000], "gamma": [scale * f for f in (0.1, 0.3, 1, 3, 10)]}, cv=cv,
                       scoring="balanced_accuracy").fit(x[lab], y[lab])
    estimator, info = fitted["svc_tuned"]
    assert info["tuned"] and info["folds"] == 3 and info["params"]["C"] == svc.best_params_["C"]
    assert info["params"]["gamma"] == pytest.approx(svc.best_params_["gamma"], rel=1e-9)
    assert info["cv_balanced_accuracy"] == pytest.approx(svc.best_score_, rel=1e-12)
    test = data.test.x.reshape(len(data.test), -1).numpy()
    assert (estimator.predict(test) == svc.predict(test)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logistic = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), {"logisticregression__C": [1e-3, 1e-2, 0.1, 1, 10, 100]},
                                cv=cv, scoring="balanced_accuracy").fit(x[lab], y[lab])
    estimator, info = fitted["logistic_tuned"]
    assert info["params"]["C"] == logistic.best_params_["logisticregression__C"] and (estimator.predict(test) == logistic.predict(test)).all()
    untuned, info = fitted["svc"]
    assert not info["tuned"] and (untuned.predict(test) == SVC().fit(x[lab], y[lab]).predict(test)).all()


def test_label_spreading_k_is_chosen_by_folds_of_the_labels_with_the_rest_in_the_graph(budget):
    data, x, y = budget
    lab = np.flatnonzero(y != UNLABELED)
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    expected = {}
    for k in (3, 5, 10, 20, 40):  # written out here with scikit-learn alone
        scores = []
        for _, held in cv.split(lab, y[lab]):
            hidden = y.copy()
            hidden[lab[held]] = -1
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                spread = LabelSpreading(kernel="knn", n_neighbors=k, max_iter=100).fit(x, hidden)
                scores.append(balanced_accuracy_score(y[lab[held]], spread.transduction_[lab[held]]))
        expected[k] = np.mean(scores)
    best = max(expected, key=lambda k: (expected[k], -k))
    estimator, info = baselines.fit_baselines(data.labeled, ("label_spreading_tuned",), seed=0)["label_spreading_tuned"]
    assert info["params"]["n_neighbors"] == best and info["cv_balanced_accuracy"] == pytest.approx(expected[best], rel=1e-12)
    assert estimator.n_neighbors == best and (estimator.transduction_[lab] == y[lab]).mean() > 0.9


def test_one_label_in_a_class_leaves_the_defaults(budget):
    data, x, y = budget
    y = y.copy()
    y[np.flatnonzero(y == 4)[1:]] = UNLABELED  # class 4 keeps one label
    lab = y != UNLABELED
    assert baselines.folds(y[lab]) is None
    estimator, info = baselines.tuned_svc(x[lab], y[lab])
    assert not info["tuned"] and "single label" in info["reason"] and estimator.C == 1.0
    assert baselines.folds(np.array([0, 0, 1, 1, 1])).n_splits == 2 and baselines.folds(np.repeat([0, 1], 9)).n_splits == 5


def test_scaled_rows_agree_with_a_pipeline_and_ignore_the_features_units(budget):
    """The standardised SVC is GridSearchCV of StandardScaler + SVC; both scaled rows predict the same whatever units
    each feature is in (the raw-feature rows do not)."""
    data, x, y = budget
    lab = y != UNLABELED
    test = data.test.x.reshape(len(data.test), -1).numpy()
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    scale = 1 / (x.shape[1] * float(StandardScaler().fit_transform(x[lab]).var()))  # gamma="scale" of standardised features
    grid = {"svc__C": [0.1, 1, 10, 100, 1000], "svc__gamma": [scale * f for f in (0.1, 0.3, 1, 3, 10)]}
    direct = GridSearchCV(make_pipeline(StandardScaler(), SVC()), grid, cv=cv, scoring="balanced_accuracy").fit(x[lab], y[lab])
    names = ("svc_tuned_scaled", "label_spreading_tuned_scaled")
    fitted = baselines.fit_baselines(data.labeled, names, seed=0)
    estimator, info = fitted["svc_tuned_scaled"]
    assert info["tuned"] and info["params"]["C"] == direct.best_params_["svc__C"]
    assert (estimator.predict(test) == direct.predict(test)).all()
    units = np.linspace(0.5, 20.0, x.shape[1]).astype(np.float32)  # every feature in other units, shifted
    flat = data.labeled.x.reshape(len(data.labeled), -1)
    other = Split("train", (flat * torch.from_numpy(units) + 3.0).reshape(data.labeled.x.shape), data.labeled.y)
    again = baselines.fit_baselines(other, names, seed=0)
    for name in names:
        assert (again[name][0].predict(test * units + 3.0) == fitted[name][0].predict(test)).mean() > 0.99, name
    raw, raw_again = (baselines.fit_baselines(split, ("svc_tuned",), seed=0)["svc_tuned"][0] for split in (data.labeled, other))
    assert (raw_again.predict(test * units + 3.0) == raw.predict(test)).mean() < 0.95  # the check has teeth


def test_spreading_over_a_neighbour_table_is_scikit_learns_spreading():
    """One neighbour search serves every k (tuning k over folds on MNIST was one search a fold and k): each k's
    graph read from the widest table is the graph scikit-learn searches for, on rows without ties in distance."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (150, 6)), rng.normal(2.5, 1, (150, 6))])
    y = np.full(300, UNLABELED)
    y[[0, 1, 2, 150, 151, 152]] = [0, 0, 0, 1, 1, 1]
    new = rng.normal(1.2, 1.5, (40, 6))
    table = baselines.neighbour_table(x, 40)
    assert (table[:, 0] == np.arange(300)).all()
    for k in (3, 10, 40):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = baselines.spreading(k, table).fit(x, y)
            theirs = LabelSpreading(kernel="knn", n_neighbors=k, max_iter=100).fit(x, y)
            predicted = ours.predict_proba(new), theirs.predict_proba(new)  # 0/0 where a component has no label
        assert (ours.transduction_ == theirs.transduction_).all()
        np.testing.assert_allclose(ours.label_distributions_, theirs.label_distributions_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(*predicted, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="neighbour table is 300 x 40"):
        baselines.spreading(41, table).fit(x, y)
