"""Model selection by validation accuracy: on a run where the validation ELBO keeps improving while the accuracy
peaks early, a classifier keeps its most accurate epoch, and summary.json says so. The accuracy is balanced (the mean
recall over the classes of the held-out labels), so that with 90% of them in one class that class does not decide."""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from ppmodels.data import Split, TrainData, prepare_data
from ppmodels.errors import ConfigError
from ppmodels.infer import TrainConfig, fit
from ppmodels.models import M2, VAE

ACCURATE_EPOCH = 2


class Disagreeing(M2):
    """An M2 whose validation ELBO rises every epoch while its predictions are right only after epoch 2."""

    epoch = 0

    def elbo_per_datum(self, split, batch_size=1000):
        return float(self.epoch)  # improves every epoch

    def predict(self, x):
        truth = self.truth[: len(x)]
        return truth if self.epoch == ACCURATE_EPOCH else (truth + 1) % 10


class Recorder:
    """Counts epochs for the model and keeps a copy of the weights at the end of each epoch."""

    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, trainer, record):
        self.weights[record["epoch"]] = copy.deepcopy(trainer.model.state_dict())
        trainer.model.epoch = record["epoch"] + 1  # what the next epoch's validation sees

    def on_train_start(self, trainer):
        trainer.model.epoch = 1


@pytest.fixture
def data(digits):
    return prepare_data(digits, num_labels=50, seed=0, protocol="paper")  # Disagreeing predicts the validation split's labels


def disagreeing(data):
    model = Disagreeing(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=0)
    model.truth = data.valid.y.numpy()
    return model


def test_selection_keeps_the_most_accurate_epoch_not_the_best_elbo(data):
    recorder = Recorder()
    model = fit(disagreeing(data), data, TrainConfig(epochs=4, batch_size=400, patience=None, min_epoch_steps=0), callbacks=[recorder])
    state = model.train_state_
    assert state.best_epoch == ACCURATE_EPOCH and state.selected_by == "valid_accuracy" and state.best_valid_accuracy == 1.0
    final = model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in recorder.weights[ACCURATE_EPOCH].items())
    assert any(not torch.equal(final[k], v) for k, v in recorder.weights[4].items())


def test_selection_by_elbo_when_asked(data):
    model = fit(disagreeing(data), data, TrainConfig(epochs=4, batch_size=400, patience=None, select_by="valid_elbo", min_epoch_steps=0),
                callbacks=[Recorder()])
    assert model.train_state_.best_epoch == 4 and model.train_state_.selected_by == "valid_elbo"


def test_early_stopping_watches_the_accuracy(data):
    model = fit(disagreeing(data), data, TrainConfig(epochs=20, batch_size=400, patience=3, min_epoch_steps=0), callbacks=[Recorder()])
    assert model.train_state_.stopped_early and model.train_state_.epoch == ACCURATE_EPOCH + 3


def test_models_without_a_classifier_select_by_elbo(data):
    vae = fit(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=0), data, TrainConfig(epochs=2, batch_size=400, patience=None))
    assert vae.train_state_.selected_by == "valid_elbo"
    with pytest.raises(ConfigError, match="select_by=valid_accuracy needs a model that trains a classifier"):
        fit(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8]), data, TrainConfig(epochs=1, batch_size=400, select_by="valid_accuracy"))
    with pytest.raises(ConfigError, match="option select_by must be one of auto, valid_accuracy, valid_elbo, last_epoch, cv, got 'accuracy'; fix --select-by"):
        TrainConfig(select_by="accuracy")


def test_summary_says_which_epoch_was_kept_and_why(tmp_path):
    import ppmodels

    _, summary = ppmodels.train("m2", "digits", tmp_path / "run", labels=130, progress=False, sample_every=0,  # 3 a class choose
                                train_config=TrainConfig(epochs=3, batch_size=400, patience=None, min_epoch_steps=0),
                                model_options={"z_dim": 2, "hidden": [8]})
    assert summary["selected_by"] == "valid_accuracy" and 1 <= summary["best_epoch"] <= 3
    assert summary["kept"].startswith(f"weights of epoch {summary['best_epoch']}, the best balanced validation accuracy")
    assert np.isfinite(summary["test_accuracy"])


class Logging(Recorder):
    """A :class:`Recorder` that keeps the epochs' records too."""

    def __init__(self):
        super().__init__()
        self.records = []

    def on_epoch_end(self, trainer, record):
        self.records.append(record)
        super().on_epoch_end(trainer, record)

    def on_train_start(self, trainer):
        trainer.model.epoch = trainer.state.epoch + 1  # a resumed run goes on from its checkpoint's epoch


class Scripted(M2):
    """An M2 whose validation ELBO rises every epoch and whose predictions in epoch ``e`` are ``answers[e]``."""

    epoch = 0

    def elbo_per_datum(self, split, batch_size=1000):
        return float(self.epoch)

    def predict(self, x):
        return self.answers[self.epoch][: len(x)]


TRUTH = np.r_[np.zeros(90, np.int64), np.ones(10, np.int64)]  # held-out labels, 90% class 0


def scripted(data):
    """Epoch 1 calls every held-out label class 0 (accuracy 0.90, balanced 0.50); epoch 2 gets class 1 right and 80%
    of class 0 (accuracy 0.82, balanced 0.90); epoch 3 guesses over 10 classes."""
    valid = Split("valid", data.valid.x[:100], torch.from_numpy(TRUTH))
    model = Scripted(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=0)
    guess = np.random.default_rng(0).integers(0, 10, 100)
    model.answers = {1: np.zeros(100, np.int64), 2: np.r_[np.zeros(72, np.int64), np.ones(28, np.int64)], 3: guess}
    return model, TrainData(data.dataset, data.train, valid, data.test, data.labeled)


def test_selection_is_balanced_when_one_class_holds_90_percent_of_the_held_out_labels(data):
    """Plain accuracy would keep epoch 1 (0.90 against 0.82); the balanced accuracy keeps epoch 2 (0.90 against 0.50)."""
    model, imbalanced = scripted(data)
    recorder = Logging()
    fit(model, imbalanced, TrainConfig(epochs=3, batch_size=400, patience=None, min_epoch_steps=0), callbacks=[recorder])
    state = model.train_state_
    assert state.best_epoch == 2 and state.selected_by == "valid_accuracy" and state.best_valid_accuracy == pytest.approx(0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # epoch 3 predicts classes the labels lack: scikit-learn says so
        expected = [balanced_accuracy_score(TRUTH, model.answers[e]) for e in (1, 2, 3)]
    assert [r["valid_accuracy"] for r in recorder.records] == pytest.approx(expected, rel=1e-12)
    assert expected[:2] == pytest.approx([0.5, 0.9]) and [accuracy_score(TRUTH, model.answers[e]) for e in (1, 2)] == pytest.approx([0.9, 0.82])


def test_a_run_resumed_from_before_balanced_selection_goes_on_with_plain_accuracy(data, tmp_path):
    """A checkpoint written before selection was balanced has no ``accuracy_kind``: its best score is a plain
    accuracy, so the resumed run goes on scoring plain accuracy rather than comparing two kinds of score."""
    from ppmodels.files import load_checkpoint, save_checkpoint
    from ppmodels.runs import prepare_run_dir

    run = prepare_run_dir(tmp_path / "run")
    model, imbalanced = scripted(data)
    fit(model, imbalanced, TrainConfig(epochs=1, batch_size=400, patience=None, min_epoch_steps=0), callbacks=[Logging()], run_dir=run)
    payload = load_checkpoint(run / "checkpoints" / "last.pt")
    del payload["state"]["accuracy_kind"]
    payload["state"]["best_valid_accuracy"] = 0.9  # epoch 1's plain accuracy, as the old trainer recorded it
    save_checkpoint(run / "checkpoints" / "last.pt", payload)
    recorder = Logging()
    model, imbalanced = scripted(data)
    fit(model, imbalanced, TrainConfig(epochs=3, batch_size=400, patience=None, min_epoch_steps=0), callbacks=[recorder], run_dir=run, resume=True)
    assert [r["valid_accuracy"] for r in recorder.records] == pytest.approx([accuracy_score(TRUTH, model.answers[e]) for e in (2, 3)])
    assert model.train_state_.best_epoch == 1 and model.train_state_.accuracy_kind == "plain"
