"""Trainer callbacks that write into a run folder: metrics log, best-weights checkpoint, sample grids, and the removal
of the run that ``--overwrite`` set aside.

A callback is any object with some of the hooks ``on_train_start``, ``on_step_end``, ``on_epoch_end``,
``on_checkpoint`` (after ``checkpoints/last.pt`` is written), ``on_best`` and ``on_train_end``; each receives the
:class:`~ppmodels.infer.Trainer` first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..files import append_jsonl, atomic_write, save_checkpoint
from ..infer.trainer import CHECKPOINTS
from ..models import CanSample
from ..plots import save_image_grid
from .folder import METRICS


class MetricsLog:
    """Appends one JSON record per epoch to ``RUN/metrics.jsonl`` (a resumed run drops records past its checkpoint)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / METRICS

    def on_train_start(self, trainer) -> None:
        if not self.path.is_file():
            return
        done = trainer.state.epoch - (1 if trainer.state.epoch_batches else 0)  # a mid-epoch checkpoint: that epoch is not done
        kept = "".join(line + "\n" for line in self.path.read_text().splitlines() if _epoch_of(line) <= done)
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(kept))

    def on_epoch_end(self, trainer, record: dict) -> None:
        append_jsonl(self.path, record)


def _epoch_of(line: str) -> float:
    """The epoch of a metrics record; a line cut short by a kill mid-write counts as past every checkpoint."""
    try:
        return json.loads(line)["epoch"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


class BestCheckpoint:
    """Writes ``RUN/checkpoints/best.pt`` (weights and epoch) whenever the trainer keeps a new best epoch: by validation
    accuracy for a model training a classifier, else by validation ELBO (training ELBO without a validation split);
    see ``Trainer._update_early_stopping`` and docs/run-folder.md."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / CHECKPOINTS / "best.pt"

    def on_best(self, trainer) -> None:
        save_checkpoint(self.path, {"model": trainer.model.state_dict(), "epoch": trainer.state.epoch})


class SampleGrid:
    """Saves a PNG grid of prior samples every ``every`` epochs, for image data (``RUN/samples/epoch_XXXX.png``)."""

    def __init__(self, run_dir: str | Path, every: int = 10, num: int = 64, seed: int = 0):
        self.folder, self.every, self.num, self.seed = Path(run_dir) / "samples", every, num, seed

    def on_epoch_end(self, trainer, record: dict) -> None:
        model = trainer.model
        if record["epoch"] % self.every or len(model.config.x_shape) != 3 or not isinstance(model, CanSample):
            return
        images = model.sample(self.num, generator=torch.Generator().manual_seed(self.seed))
        save_image_grid(images, self.folder / f"epoch_{record['epoch']:04d}.png")
