"""Trainer callbacks that only report: the progress bar.

A callback is any object with some of the hooks ``on_train_start``, ``on_step_end``, ``on_epoch_end``,
``on_best`` and ``on_train_end``; each receives the :class:`~ppmodels.infer.Trainer` first. Callbacks that write
into a run folder are in :mod:`ppmodels.runs.callbacks`.
"""

from __future__ import annotations


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
