"""select_by=cv: the epoch count cross-validated over the training labels, then a refit on all of them
(ppmodels.infer.crossval)."""

import json
import signal

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from typer.testing import CliRunner

from ppmodels.data import UNLABELED, prepare_data
from ppmodels.errors import ConfigError, Interrupted
from ppmodels.infer import TrainConfig, fit, fit_cv
from ppmodels.infer.crossval import choose_epoch, label_folds
from ppmodels.models import M2
from ppmodels_cli.main import app

FAST = dict(batch_size=200, min_epoch_steps=0, seed=0)


class SpyM2(M2):
    """M2 that records the labels its training batches are drawn from and, after training, its predictions."""

    seen = []  # (instance, training labels, predictions on the training rows), in the order the runs train

    def training_batches(self, train, batch_size, generator):
        if not any(entry[0] is self for entry in SpyM2.seen):
            SpyM2.seen.append((self, train.y.clone(), None))
        return super().training_batches(train, batch_size, generator)

    def after_fit(self, data):
        super().after_fit(data)
        i = next(i for i, entry in enumerate(SpyM2.seen) if entry[0] is self)
        SpyM2.seen[i] = (self, SpyM2.seen[i][1], self.predict(data.train.x))


def spy_model():
    SpyM2.seen = []
    return SpyM2(x_shape=[1, 8, 8], z_dim=2, hidden=[16], seed=0)


@pytest.fixture(scope="module")
def cv_run(digits):
    """A 2-fold, 3-epoch cv fit of M2 on digits-50 whose runs were watched."""
    data = prepare_data(digits, num_labels=50, seed=0, valid_labels=0)
    model = spy_model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    fit_cv(model, data, TrainConfig(epochs=3, select_by="cv", cv_folds=2, **FAST))
    return data, model, initial, list(SpyM2.seen)


def test_folds_are_stratified_disjoint_and_cover_every_label():
    rng = np.random.default_rng(0)
    y = np.full(200, UNLABELED)
    counts = {0: 7, 1: 12, 2: 5, 3: 9}
    where = rng.permutation(200)
    start = 0
    for c, n in counts.items():
        y[where[start:start + n]] = c
        start += n
    folds = label_folds(y, seed=3)
    assert len(folds) == 5  # min(5, smallest class's 5)
    together = np.concatenate(folds)
    assert len(together) == len(np.unique(together)) and set(together) == set(np.flatnonzero(y != UNLABELED))
    for c, n in counts.items():  # each class shared out as evenly as the folds allow
        per_fold = [int((y[f] == c).sum()) for f in folds]
        assert sum(per_fold) == n and max(per_fold) - min(per_fold) <= 1
    assert len(label_folds(np.array([0, 0, 0, 1, 1, 1, UNLABELED]))) == 3  # fewer than 5 labels a class: that many folds
    with pytest.raises(ConfigError, match="class 2 has 5"):
        label_folds(y, folds=6)
    with pytest.raises(ConfigError, match="class 1 has 1"):
        label_folds(np.array([0, 0, 1]))


def test_no_fold_sees_its_held_out_labels_and_the_refit_sees_all(cv_run):
    data, model, _, seen = cv_run
    labels = data.train.y
    folds = label_folds(labels.numpy(), 2, seed=0)
    assert len(seen) == 3 and seen[-1][0] is model  # two folds, then the refit of the model itself
    for held, (_, visible, _) in zip(folds, seen):
        assert bool((visible[held] == UNLABELED).all())  # the fold's labels never reach its training
        rest = np.setdiff1d(np.arange(len(labels)), held)
        assert torch.equal(visible[rest], labels[rest])  # every other label does
    assert torch.equal(seen[-1][1], labels)


def test_the_chosen_epoch_is_the_argmax_of_the_mean_fold_curve(cv_run):
    data, model, _, seen = cv_run
    record = model.train_state_.cv
    curves = np.array(record["curves"], dtype=float)
    assert curves.shape == (2, 3) and record["folds"] == 2 and record["labels"] == 50
    mean = curves.mean(0)
    np.testing.assert_allclose(record["mean_curve"], mean, rtol=1e-12)
    assert record["chosen_epoch"] == int(np.argmax(mean)) + 1 and record["mean_score"] == pytest.approx(mean.max())
    # the curves are the folds' own: their last point is scikit-learn's balanced accuracy of each fold model at the end
    for held, curve, (_, _, predicted) in zip(label_folds(data.train.y.numpy(), 2, seed=0), curves, seen):
        assert curve[-1] == pytest.approx(balanced_accuracy_score(data.train.y.numpy()[held], predicted[held]), rel=1e-12)


def test_choose_epoch_breaks_ties_early_and_skips_unscored_epochs():
    assert choose_epoch([[0.5, 0.7, 0.7], [0.6, 0.8, 0.8]])[0] == 2
    epoch, mean = choose_epoch([[None, 0.4, 0.9], [None, 0.8, 0.1]])
    assert epoch == 2 and mean[0] is None and mean[1:] == pytest.approx([0.6, 0.5], rel=1e-12)
    with pytest.raises(ConfigError, match="trains a classifier"):
        choose_epoch([[None, None]])


def test_the_refit_trains_on_every_label_for_the_chosen_epochs(cv_run, digits):
    data, model, initial, _ = cv_run
    chosen = model.train_state_.cv["chosen_epoch"]
    assert model.train_state_.epoch == chosen == model.train_state_.best_epoch and model.train_state_.selected_by == "cv"
    plain = M2(x_shape=[1, 8, 8], z_dim=2, hidden=[16], seed=0)
    plain.load_state_dict(initial)
    fit(plain, data, TrainConfig(epochs=chosen, select_by="last_epoch", **FAST))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), plain.state_dict().values()))


def test_a_fold_trains_the_same_epochs_whatever_the_budget(digits):
    """What lets one long run show what a shorter budget would choose (docs/ssl.md): a fold's first epochs do not
    depend on the budget."""
    data = prepare_data(digits, num_labels=50, seed=1, valid_labels=0)
    curves = [fit_cv(M2(x_shape=[1, 8, 8], z_dim=2, hidden=[16], seed=0), data,
                     TrainConfig(epochs=epochs, select_by="cv", cv_folds=2, **FAST)).train_state_.cv["curves"] for epochs in (2, 3)]
    assert [c[:2] for c in curves[1]] == curves[0]


def test_plain_fit_refuses_cv_and_cv_refuses_lr_patience(digits):
    data = prepare_data(digits, num_labels=50, seed=0, valid_labels=0)
    model = M2(x_shape=[1, 8, 8], z_dim=2, hidden=[16], seed=0)
    with pytest.raises(ConfigError, match="fit_cv"):
        fit(model, data, TrainConfig(epochs=1, select_by="cv"))
    with pytest.raises(ConfigError, match="lr-patience"):
        fit_cv(model, data, TrainConfig(epochs=1, select_by="cv", lr_patience=2))


runner = CliRunner()
CLI_FAST = ["--data", "digits", "--labels", "50", "--epochs", "2", "--batch-size", "200", "--min-epoch-steps", "0", "--hidden", "16",
            "--z-dim", "2", "--quiet", "--select-by", "cv", "--cv-folds", "2"]


def test_cli_writes_the_cv_record_and_resumes_from_finished_folds(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "m2", *CLI_FAST, "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary, record = json.loads((out / "summary.json").read_text()), json.loads((out / "cv.json").read_text())
    assert summary["cv"] == record and summary["selected_by"] == "cv" and summary["epochs"] == record["chosen_epoch"]
    assert summary["selection"]["labels"] == 50 and "cross-validation over the 50 training labels" in summary["selection"]["source"]
    assert summary["label_counts"]["selection_per_class"] == [0] * 10  # nothing held out: every label trains the refit
    # a run stopped after its first fold: that fold is kept (its marked curve is not trained again), the second trains
    second = record["curves"][1]
    record.update(curves=[[0.0, 1.0]], fold_best_epochs=[2])
    (out / "cv.json").write_text(json.dumps(record))
    for path in (out / "model.safetensors", out / "summary.json", *(out / "checkpoints").iterdir()):
        path.unlink()
    result = runner.invoke(app, ["train", "m2", "--out", str(out), "--resume", "--quiet"])
    assert result.exit_code == 0, result.output
    resumed = json.loads((out / "summary.json").read_text())["cv"]
    assert resumed["curves"][0] == [0.0, 1.0] and resumed["curves"][1] == second and len(resumed["curves"]) == 2


def test_cli_refuses_cv_where_it_cannot_apply(tmp_path):
    for args, expected in ((["train", "vae", *CLI_FAST], "trains none"),
                           (["train", "m2", *CLI_FAST, "--valid-labels", "10"], "drop --valid-labels")):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "x")])
        assert result.exit_code != 0 and expected in result.output and "Traceback" not in result.output


class StopAtFold:
    """Fold callbacks that stop fold ``stop`` (0-based) after its first epoch, as a signal would."""

    def __init__(self, stop):
        self.stop = stop

    def __call__(self, i, k):
        return [self] if i == self.stop else []

    def on_epoch_end(self, trainer, record):
        raise Interrupted("stopped by SIGTERM at epoch 1, step 7; no run folder, nothing saved", signal.SIGTERM)


def test_an_interrupted_fold_keeps_the_finished_ones_and_resume_uses_them(digits, tmp_path):
    data = prepare_data(digits, num_labels=50, seed=0, valid_labels=0)
    config = TrainConfig(epochs=2, select_by="cv", cv_folds=2, **FAST)
    with pytest.raises(Interrupted, match=r"fold 2 of 2; the 1 finished fold\(s\) are kept in .*cv.json, this fold trains again"):
        fit_cv(M2(x_shape=[1, 8, 8], z_dim=2, hidden=[16], seed=0), data, config, run_dir=tmp_path, fold_callbacks=StopAtFold(1))
    kept = json.loads((tmp_path / "cv.json").read_text())
    assert len(kept["curves"]) == 1 and "chosen_epoch" not in kept
    kept["curves"][0] = [0.0, 1.0]  # marked: a resumed run that trained fold 1 again would overwrite it
    (tmp_path / "cv.json").write_text(json.dumps(kept))
    model = fit_cv(M2(x_shape=[1, 8, 8], z_dim=2, hidden=[16], seed=0), data, config, run_dir=tmp_path, resume=True)
    assert model.train_state_.cv["curves"][0] == [0.0, 1.0] and len(model.train_state_.cv["curves"]) == 2
