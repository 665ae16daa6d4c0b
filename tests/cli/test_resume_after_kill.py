"""``ppmodels train`` killed with SIGKILL and resumed with ``--resume`` ends exactly where an uninterrupted run ends.

Each run is a separate process, as a real crash would leave it: the test polls the run folder, kills the process
at a chosen point (right after the first checkpoint is renamed into place; as the metrics line of a later epoch
appears, which is just before that epoch's checkpoint is written), resumes, and at the end compares the final
weights (bitwise), the metrics log (every field but wall time) and the summary ELBOs with an uninterrupted run
with the same seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

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


def metrics_epochs(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    epochs = []
    for line in path.read_text().splitlines():
        try:
            epochs.append(json.loads(line)["epoch"])
        except (json.JSONDecodeError, KeyError):
            pass
    return epochs


def kill_when(args: list[str], ready: Callable[[], bool], timeout: float = 120.0) -> None:
    """Start ``ppmodels ARGS``, SIGKILL it as soon as ``ready()`` holds, and check it died of the kill."""
    process = subprocess.Popen(command(*args), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                pytest.fail(f"the run ended (code {process.returncode}) before the kill point: {process.stderr.read().decode()[-500:]}")
            if time.monotonic() > deadline:
                pytest.fail("the kill point never came")
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


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

    kill_when([*train, "--out", str(run)], lambda: (run / "checkpoints" / "last.pt").is_file())
    first = checkpoint_epoch(run)
    kill_when(resume, lambda: max(metrics_epochs(run), default=0) >= 5)
    later = checkpoint_epoch(run)
    assert first >= 1 and later >= 4, (first, later)
    print(f"killed twice, with checkpoints/last.pt at epochs {first} and {later}")
    finish(resume)

    wait_for(background)
    summary = json.loads((reference / "summary.json").read_text())
    # the second kill came before the end, which is all 12 epochs or where early stopping's patience ran out
    assert later < summary["epochs"]
    assert summary["epochs"] - summary["best_epoch"] == PATIENCE if summary["stopped_early"] else summary["epochs"] == 12
    assert_same_run(run, reference)


@pytest.mark.slow
def test_sigkill_at_many_points_then_resume(tmp_path):
    """Six kills in one run of 30 epochs without early stopping: after the first checkpoint, as the metrics lines of
    epochs 6, 9, 14 and 20 appear, and once more at least four seconds into a resumed process."""
    train = [*TRAIN, "--epochs", "30", "--patience", "100"]
    run, reference = tmp_path / "killed", tmp_path / "reference"
    background = reference_run(reference, train)
    resume = ["train", "vae", "--out", str(run), "--resume", "--quiet"]

    kill_when([*train, "--out", str(run)], lambda: (run / "checkpoints" / "last.pt").is_file())
    for target in (6, 9, 14, 20):
        kill_when(resume, lambda target=target: max(metrics_epochs(run), default=0) >= target)
    start = time.monotonic()
    kill_when(resume, lambda: time.monotonic() - start > 4.0 and max(metrics_epochs(run), default=0) >= 21)
    finish(resume)

    wait_for(background)
    assert_same_run(run, reference)
