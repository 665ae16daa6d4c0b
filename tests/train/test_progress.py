"""The progress bar: steps within the epoch and an ETA on a terminal, one plain line per epoch elsewhere."""

import io
import re

from rich.console import Console
from typer.testing import CliRunner

from ppmodels.data import prepare_data
from ppmodels.infer import ProgressBar, TrainConfig, Trainer
from ppmodels.models import VAE
from ppmodels_cli.main import app

PLAIN = re.compile(r"epoch (\d)/3  (\d+) steps  train ELBO -?\d+\.\d\d  valid ELBO -?\d+\.\d\d  no improvement for \d  "
                   r"elapsed \d:\d\d:\d\d  ETA \d:\d\d:\d\d")


class BarWatcher:
    """After each step, what the live bar holds: (epoch, step within the epoch, completed steps of the run, total)."""

    def __init__(self, bar: ProgressBar):
        self.bar, self.seen = bar, []

    def on_step_end(self, trainer, loss):
        if self.bar._progress is not None:
            task = self.bar._progress.tasks[0]
            self.seen.append((task.fields["epoch"], task.fields["step"], task.completed, task.total))


def train_with(console, digits, *watchers) -> str:
    model = VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[16])
    bar = ProgressBar(console=console)
    callbacks = [bar, *(watcher(bar) for watcher in watchers)]
    Trainer(TrainConfig(epochs=3, batch_size=256, patience=None), callbacks).fit(model, prepare_data(digits))
    return console.file.getvalue(), callbacks[1:]


def test_off_a_terminal_one_plain_line_per_epoch(digits):
    lines = train_with(Console(file=io.StringIO(), force_terminal=False), digits)[0].splitlines()
    steps = -(-len(digits.splits["train"]) // 256)
    assert [PLAIN.fullmatch(line).groups() for line in lines] == [("1", str(steps)), ("2", str(steps)), ("3", str(steps))], lines
    assert "\x1b" not in "".join(lines)


def test_on_a_terminal_the_bar_moves_within_the_epoch_with_an_eta(digits):
    output, (watcher,) = train_with(Console(file=io.StringIO(), force_terminal=True, width=200), digits, BarWatcher)
    steps = -(-len(digits.splits["train"]) // 256)
    assert watcher.seen == [(epoch, step, (epoch - 1) * steps + step, 3 * steps) for epoch in (1, 2, 3) for step in range(1, steps + 1)]
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).split("\r")[-1]
    assert re.match(rf"epoch 3/3 step {steps}/{steps} .* \d:\d\d:\d\d ETA \d:\d\d:\d\d train ELBO", last), last


def test_train_off_a_terminal_prints_a_line_per_epoch(tmp_path):
    result = CliRunner().invoke(app, ["train", "vae", "--epochs", "2", "--hidden", "8", "--z-dim", "2", "--sample-every", "0",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert [line.split("  ")[0] for line in result.stderr.splitlines()] == ["epoch 1/2", "epoch 2/2"]
