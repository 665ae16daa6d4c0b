"""The per-step gradient check is cheap (norms) yet exact: huge finite gradients pass, a single NaN entry does not."""

import pytest
import torch

from ppmodels.errors import TrainingError
from ppmodels.models import VAE
from ppmodels.infer import TrainConfig, Trainer


def trainer_for(model):
    trainer = Trainer(TrainConfig(lr=1e-3))
    trainer.model, trainer.optimizer = model, torch.optim.Adam(model.parameters(), lr=1e-3)
    return trainer


def test_huge_but_finite_gradients_are_not_reported_as_nonfinite():
    torch.manual_seed(0)
    vae = VAE(x_shape=[6], z_dim=2, hidden=[5])
    w = vae.decoder.net.net[0].weight
    before = w.detach().clone()
    vae.loss = lambda batch: (w * 1e30).sum() * 1e-8  # gradient entries 1e22: their squares overflow float32
    trainer = trainer_for(vae)
    loss = trainer._step({"x": torch.rand(3, 6), "num_data": 3})
    assert loss == pytest.approx(float((before * 1e30).sum() * 1e-8), rel=1e-5)  # the batch's loss, not a skip
    assert int(trainer.optimizer.state[w]["step"]) == 1 and torch.isfinite(w).all()  # Adam took its step


def test_one_nan_gradient_entry_is_named():
    torch.manual_seed(0)
    vae = VAE(x_shape=[6], z_dim=2, hidden=[5])
    w = vae.decoder.net.net[0].weight
    vae.loss = lambda batch: (w.flatten()[3] - w.flatten()[3].detach()).abs().sqrt() + w.sum()  # d sqrt(|u|) at 0: NaN
    with pytest.raises(TrainingError, match=r"non-finite gradient of decoder\.net\.net\.0\.weight"):
        trainer_for(vae)._step({"x": torch.rand(3, 6), "num_data": 3})
