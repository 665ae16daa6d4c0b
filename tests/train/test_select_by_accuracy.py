"""Model selection by validation accuracy: on a run where the validation ELBO keeps improving while the accuracy
peaks early, a classifier keeps its most accurate epoch, and summary.json says so."""

import copy

import numpy as np
import pytest
import torch

from ppmodels.data import prepare_data
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

    _, summary = ppmodels.train("m2", "digits", tmp_path / "run", labels=80, progress=False, sample_every=0,  # 2 a class choose
                                train_config=TrainConfig(epochs=3, batch_size=400, patience=None, min_epoch_steps=0),
                                model_options={"z_dim": 2, "hidden": [8]})
    assert summary["selected_by"] == "valid_accuracy" and 1 <= summary["best_epoch"] <= 3
    assert summary["kept"].startswith(f"weights of epoch {summary['best_epoch']}, the best validation accuracy")
    assert np.isfinite(summary["test_accuracy"])
