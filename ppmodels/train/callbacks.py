"""Trainer callbacks: progress bar, metrics log, best-weights checkpoint, sample grids.

A callback is any object with some of the hooks ``on_train_start``, ``on_step_end``, ``on_epoch_end``,
``on_best`` and ``on_train_end``; each receives the :class:`~ppmodels.train.Trainer` first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..plots import save_image_grid
from ..run import CHECKPOINTS, METRICS, append_jsonl, atomic_write, save_checkpoint


class ProgressBar:
    """A rich progress bar on stderr: epoch, step, elapsed, train/valid ELBO per datum, epochs without improvement."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self._progress = None

    def on_train_start(self, trainer) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]epoch"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
                                  TextColumn("{task.fields[info]}"), console=Console(stderr=True), disable=self.disable)
        self._progress.start()
        self._task = self._progress.add_task("train", total=trainer.config.epochs, completed=trainer.state.epoch, info="")

    def on_epoch_end(self, trainer, record: dict) -> None:
        info = f"step {record['step']}  train ELBO {record['train_elbo']:.2f}"
        if "valid_elbo" in record:
            info += f"  valid ELBO {record['valid_elbo']:.2f}"
        info += f"  no improvement for {record['epochs_without_improvement']}"
        self._progress.update(self._task, completed=record["epoch"], info=info)

    def on_train_end(self, trainer) -> None:
        self._progress.stop()


class MetricsLog:
    """Appends one JSON record per epoch to ``RUN/metrics.jsonl`` (a resumed run drops records past its checkpoint)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / METRICS

    def on_train_start(self, trainer) -> None:
        if not self.path.is_file():
            return
        kept = "".join(line + "\n" for line in self.path.read_text().splitlines() if _epoch_of(line) <= trainer.state.epoch)
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
    """Writes ``RUN/checkpoints/best.pt`` (weights only) whenever the validation ELBO improves."""

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
        if record["epoch"] % self.every or len(model.config.x_shape) != 3 or not hasattr(model, "sample"):
            return
        images = model.sample(self.num, generator=torch.Generator().manual_seed(self.seed))
        save_image_grid(images, self.folder / f"epoch_{record['epoch']:04d}.png")
