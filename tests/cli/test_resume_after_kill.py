"""``ppmodels train`` killed with SIGKILL and resumed with ``--resume`` ends exactly where an uninterrupted run ends.

Each run is a separate process, as a real crash would leave it. The process kills itself at a defined point through
a test-only plugin (tests/kill_plugin.py, named in ``PPMODELS_PLUGINS``): right after a checkpoint is renamed
into place, or right after an epoch's metrics line is written, before that epoch's checkpoint; no clock, no polling.
The test resumes and at the end compares the final weights (bitwise), the metrics log (every field but wall time)
and the summary ELBOs with an uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ppmodels.files import load_checkpoint

TRAIN = ["train", "vae", "--data", "digits", "--hidden", "16", "--z-dim", "2", "--batch-size", "64", "--lr", "0.05",
         "--patience", "3", "--seed", "7", "--quiet", "--sample-every", "4"]
PATIENCE = int(TRAIN[TRAIN.index("--patience") + 1])  # a fast learning rate: early stopping's state changes within the run
SUMMARY_KEYS = ("train_elbo", "valid_elbo", "test_elbo", "epochs", "best_epoch", "stopped_early", "skipped_batches", "seed")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ppmodels_cli.main", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


KILL_PLUGIN = Path(__file__).parents[1] / "kill_plugin.py"


def kill_at(args: list[str], point: str) -> None:
    """Run ``ppmodels ARGS`` until it SIGKILLs itself at ``point`` (``HOOK:N``, see kill_plugin.py), and check it died
    of that kill rather than ending on its own or failing."""
    env = {**environment(), "PPMODELS_PLUGINS": str(KILL_PLUGIN), "PPMODELS_TEST_KILL": point}
    result = subprocess.run(command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, f"no kill at {point} (exit code {result.returncode}): {result.stderr[-500:]}"


def metrics_epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def finish(args: list[str]) -> None:
    result = subprocess.run(command(*args), env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def checkpoint_epoch(run: Path) -> int:
    return load_checkpoint(run / "checkpoints" / "last.pt")["state"]["epoch"]


def records(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed"} for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(run: Path, reference: Path) -> None:
    ours, theirs = load_file(run / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), f"{key} differs from the uninterrupted run"
    assert records(run) == records(reference)
    summary, expected = (json.loads((r / "summary.json").read_text()) for r in (run, reference))
    assert {k: summary[k] for k in SUMMARY_KEYS} == {k: expected[k] for k in SUMMARY_KEYS}
    assert not list(run.rglob("*.tmp")), "a half-written file was left behind"


def reference_run(reference: Path, args: list[str]) -> subprocess.Popen:
    """The uninterrupted run, started in the background while the killed one runs."""
    return subprocess.Popen(command(*args, "--out", str(reference)), env=environment(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]


def test_sigkill_after_first_and_later_checkpoint_then_resume(tmp_path):
    train = [*TRAIN, "--epochs", "12"]
    run, reference = tmp_path / "killed", tmp_path / "reference"
    background = reference_run(reference, train)
    resume = ["train", "vae", "--out", str(run), "--resume", "--quiet"]

    kill_at([*train, "--out", str(run)], "on_checkpoint:1")  # just after the first last.pt is in place
    assert checkpoint_epoch(run) == 1 and metrics_epochs(run) == [1]
    kill_at(resume, "on_epoch_end:4")  # epoch 5's metrics line written, its checkpoint not
    assert checkpoint_epoch(run) == 4 and metrics_epochs(run) == [1, 2, 3, 4, 5]
    finish(resume)

    wait_for(background)
    summary = json.loads((reference / "summary.json").read_text())
    # the second kill came before the end, which is all 12 epochs or where early stopping's patience ran out
    assert summary["epochs"] > 5
    assert summary["epochs"] - summary["best_epoch"] == PATIENCE if summary["stopped_early"] else summary["epochs"] == 12
    assert_same_run(run, reference)


@pytest.mark.slow
def test_sigkill_at_many_points_then_resume(tmp_path):
    """Six kills in one run of 30 epochs without early stopping: after the first checkpoint, as the metrics lines of
    epochs 6, 9, 14 and 20 appear, and once more in the middle of the epoch after (10 batches into it)."""
    train = [*TRAIN, "--epochs", "30", "--patience", "100"]
    run, reference = tmp_path / "killed", tmp_path / "reference"
    background = reference_run(reference, train)
    resume = ["train", "vae", "--out", str(run), "--resume", "--quiet"]

    kill_at([*train, "--out", str(run)], "on_checkpoint:1")
    for target in (6, 9, 14, 20):
        kill_at(resume, f"on_epoch_end:{target - checkpoint_epoch(run)}")
        assert max(metrics_epochs(run)) == target and checkpoint_epoch(run) == target - 1
    kill_at(resume, "on_step_end:10")  # an epoch of digits at batch size 64 has more than 10 batches
    assert checkpoint_epoch(run) == 19
    finish(resume)

    wait_for(background)
    assert_same_run(run, reference)
