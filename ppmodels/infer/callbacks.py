"""Trainer callbacks that only report: the progress bar.

A callback is any object with some of the hooks ``on_train_start``, ``on_step_end``, ``on_epoch_end``,
``on_best`` and ``on_train_end``; each receives the :class:`~ppmodels.infer.Trainer` first. Callbacks that write
into a run folder are in :mod:`ppmodels.runs.callbacks`.
"""

from __future__ import annotations

import datetime
import math
import time


def clock(seconds: float) -> str:
    """``H:MM:SS``."""
    return str(datetime.timedelta(seconds=int(max(0.0, seconds))))


#: off a terminal, the most seconds without a progress line while an epoch runs
STEP_LINE_EVERY_S = 60.0


class ProgressBar:
    """Training progress on stderr.

    On a terminal, a live bar over every step of the run: the epoch, the step within it, elapsed time, the time
    left (ETA) and the last epoch's train/valid ELBO per datum. Elsewhere (a log file, a pipe, CI) one plain line per
    epoch with the same figures, since a live bar there prints nothing until the end.

    :param disable: print nothing.
    :param console: a ``rich.console.Console`` to write to (default: stderr); its ``is_terminal`` picks the mode.
    """

    def __init__(self, disable: bool = False, console=None):
        self.disable = disable
        self.console = console
        self._progress = None

    def on_train_start(self, trainer) -> None:
        if self.disable:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = self.console or Console(stderr=True)
        state, epochs = trainer.state, trainer.config.epochs
        # steps per epoch: a first guess from the data and the epoch's least number of steps, then what the last
        # epoch took (models batch differently)
        self._steps = max(1, math.ceil(len(trainer.data.train) / trainer.config.batch_size), trainer.min_epoch_steps())
        self._epoch_start_step, self._start_epoch, self._start = state.step, state.epoch, time.perf_counter()
        self._last_line = self._start
        if not self.console.is_terminal:
            return
        self._progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                                  TextColumn("step {task.fields[step]}/{task.fields[steps]}"), BarColumn(), TimeElapsedColumn(),
                                  TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console)
        self._progress.start()
        self._task = self._progress.add_task("train", total=epochs * self._steps, completed=state.epoch * self._steps,
                                             epoch=min(state.epoch + 1, epochs), epochs=epochs, step=0, steps=self._steps, info="")

    def on_step_end(self, trainer, loss: float) -> None:
        if self._progress is None:
            self._step_line(trainer)
            return
        state = trainer.state
        step = state.step - self._epoch_start_step
        self._progress.update(self._task, completed=(state.epoch - 1) * self._steps + min(step, self._steps), epoch=state.epoch,
                              step=step)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.disable:
            return
        self._steps = max(1, record["step"] - self._epoch_start_step)
        self._epoch_start_step = record["step"]
        epochs = trainer.config.epochs
        if "train_elbo" in record:
            info = f"train ELBO {record['train_elbo']:.2f}"
        else:  # a model with parameter groups (the GAN): each group's mean loss
            info = "  ".join(f"{key[5:]} loss {value:.3f}" for key, value in record.items() if key.startswith("loss_"))
        if "valid_elbo" in record:
            info += f"  valid ELBO {record['valid_elbo']:.2f}"
        info += f"  no improvement for {record['epochs_without_improvement']}"
        if self._progress is not None:
            self._progress.update(self._task, total=epochs * self._steps, completed=record["epoch"] * self._steps, step=self._steps,
                                  steps=self._steps, info=info)
            return
        elapsed = time.perf_counter() - self._start
        self._last_line = time.perf_counter()
        left = elapsed / max(1, record["epoch"] - self._start_epoch) * (epochs - record["epoch"])
        print(f"epoch {record['epoch']}/{epochs}  {self._steps} steps  {info}  elapsed {clock(elapsed)}  ETA {clock(left)}",
              file=self.console.file, flush=True)

    def _step_line(self, trainer) -> None:
        """Off a terminal, a line within a long epoch (``--min-epoch-steps``, a big data set) every
        :data:`STEP_LINE_EVERY_S` seconds, so a log shows the run is alive."""
        if self.disable or self.console is None or time.perf_counter() - self._last_line < STEP_LINE_EVERY_S:
            return
        self._last_line = time.perf_counter()
        state = trainer.state
        print(f"epoch {state.epoch}/{trainer.config.epochs}  step {state.step - self._epoch_start_step} of about {self._steps}"
              f"  elapsed {clock(self._last_line - self._start)}", file=self.console.file, flush=True)

    def on_train_end(self, trainer) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
