import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score

from ppmodels.errors import DataError
from ppmodels.metrics import balanced_accuracy, balanced_from_counts, classification_report, collapse_warnings, majority_rate, per_class_recall


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(5, size=200, p=[0.6, 0.1, 0.1, 0.1, 0.1])
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 5, 200))
    assert balanced_accuracy(y_true, y_pred) == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    assert np.allclose(per_class_recall(y_true, y_pred), recall_score(y_true, y_pred, average=None))
    # the trainer's form: counts per class (as summed over processes), one class absent from the truth
    keep = (y_true != 3) & (y_pred != 3)
    hits, support = np.bincount(y_true[keep][(y_true == y_pred)[keep]], minlength=5), np.bincount(y_true[keep], minlength=5)
    assert balanced_from_counts(hits, support) == pytest.approx(balanced_accuracy_score(y_true[keep], y_pred[keep]), abs=1e-12)


def test_recall_of_a_class_without_examples_is_nan_and_left_out_of_the_mean():
    recall = per_class_recall([0, 0, 1, 1], [0, 1, 1, 1], num_classes=5)
    assert recall[:2].tolist() == [0.5, 1.0] and np.isnan(recall[2:]).all()
    assert balanced_accuracy([0, 0, 1, 1], [0, 1, 1, 1]) == 0.75


def test_the_majority_class_predictor_is_caught():
    y_true = np.array([0] * 90 + list(range(1, 10)) * 1 + [1])
    y_pred = np.zeros_like(y_true)
    assert majority_rate(y_true) == (0, 0.9)
    assert balanced_accuracy(y_true, y_pred) == pytest.approx(0.1)
    warnings = collapse_warnings(y_true, y_pred)
    assert len(warnings) == 2
    assert "no better than always predicting the majority class 0 (0.900" in warnings[0]
    assert "predictions collapse onto class 0: it is predicted for 100% of the examples, including 100% of those of other classes" in warnings[1]


def test_a_classifier_that_only_mostly_predicts_the_majority_is_caught():
    """The student project's failure: accuracy above the majority rate, yet the other classes are mostly lost."""
    y_true = np.array([0] * 90 + [1] * 5 + [2] * 5)
    y_pred = np.zeros(100, dtype=int)
    y_pred[[90, 95]] = [1, 2]  # one hit in each minority class
    assert (y_true == y_pred).mean() == 0.92
    assert collapse_warnings(y_true, y_pred) == [
        "predictions collapse onto class 0: it is predicted for 98% of the examples, including 80% of those of other classes; "
        "try --max-per-class or class-balanced labels (--labels)"]


def test_a_good_classifier_on_imbalanced_labels_raises_no_warning():
    y_true = np.array([0] * 90 + [1] * 5 + [2] * 5)
    y_pred = y_true.copy()
    y_pred[[0, 95]] = [1, 0]  # one mistake each way
    assert collapse_warnings(y_true, y_pred) == []


def test_a_majority_called_rare_classes_is_caught():
    """The opposite failure (M2 with a uniform p(y) on digits90): the 90% class mostly right, but a third of it given
    to rare classes; a fifth or less lost raises nothing."""
    y_true = np.array([0] * 90 + list(range(1, 10)) + [1])
    dispersed = y_true.copy()
    dispersed[:30] = np.arange(30) % 9 + 1  # 30 of the 90 majority examples called rare classes
    warnings = collapse_warnings(y_true, dispersed)
    assert len(warnings) == 2 and warnings[0].startswith("accuracy 0.700 is no better than always predicting")
    assert warnings[1:] == ["the majority class 0 (90% of the examples) is predicted for only 67% of its own examples, the rest "
                        "called rarer classes; try labels in the data's own class shares (class-balanced labels, as --labels "
                        "draws them, present the classes as equally common)"]
    fewer = y_true.copy()
    fewer[:18] = 1  # 18 of 90: 80% kept
    assert not any("majority class 0 (90%" in w for w in collapse_warnings(y_true, fewer))
    halves = np.repeat([0, 1], 50)  # no class holds more than half: a collapse, but no majority to lose
    assert not any("majority class 0 (50%" in w for w in collapse_warnings(halves, np.ones(100, dtype=int)))


def test_collapse_is_judged_on_the_other_classes_not_on_the_share():
    y_true = np.repeat([0, 1, 2, 3], 25)
    half_absorbed = np.where((y_true > 0) & (np.arange(100) % 25 < 13), 0, y_true)  # 13 of 25 of each other class
    assert any("collapse onto class 0" in w for w in collapse_warnings(y_true, half_absorbed))
    fewer = np.where((y_true > 0) & (np.arange(100) % 25 < 12), 0, y_true)  # 12 of 25: not more than half
    assert not any("collapse" in w for w in collapse_warnings(y_true, fewer))


def test_report_is_json_ready():
    import json

    report = classification_report([0, 0, 1], [0, 0, 0], num_classes=3)
    assert json.loads(json.dumps(report)) == report
    assert report["per_class_recall"] == [1.0, 0.0, None] and report["majority_rate"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("y_true, y_pred", [([0, 1], [0]), ([], []), ([0, -1], [0, 0])])
def test_bad_inputs(y_true, y_pred):
    with pytest.raises(DataError):
        classification_report(y_true, y_pred)


def test_the_collapse_warning_names_the_models_own_remedy():
    """M2 refuses class_weight, so its warning must not recommend it; M1's does."""
    from ppmodels.models import M1, M2

    y_true, y_pred = np.array([0] * 90 + [1] * 5 + [2] * 5), np.zeros(100, dtype=int)
    m2_warning = collapse_warnings(y_true, y_pred, M2.imbalance_remedy)[-1]
    assert "class_prior=labeled" in m2_warning and "class_weight" not in m2_warning
    assert "class_weight=balanced" in collapse_warnings(y_true, y_pred, M1.imbalance_remedy)[-1]


def test_the_dispersal_warning_names_the_models_own_remedy():
    """A majority class called rarer ones: models with a class prior learn it (M2, the ADGM that inherits its remedies,
    M1+M2); M1 has none, and class_prior is not among its options."""
    from ppmodels.models import ADGM, M1, M1M2, M2

    y_true = np.array([0] * 90 + [1] * 10)
    y_pred = np.where(np.arange(100) < 40, 1, y_true)  # 40 of the 90 majority examples called class 1
    dispersal = {cls: collapse_warnings(y_true, y_pred, cls.imbalance_remedy, cls.dispersal_remedy)[-1] for cls in (M2, ADGM, M1M2, M1)}
    assert all(text.startswith("the majority class 0 (90% of the examples) is predicted for only 56%") for text in dispersal.values())
    assert all("class_prior=learned" in dispersal[cls] for cls in (M2, ADGM, M1M2))
    assert "class_prior" not in dispersal[M1] and "class_weight=none" in dispersal[M1]
