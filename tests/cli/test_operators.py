"""Runs that survive their operators (issue 32): one writer per run folder, ``--overwrite`` that keeps the old run
until the new one succeeded, SIGTERM/SIGINT at a step boundary with an exact resume, damaged weights detected.

Processes are held, not timed: ``HELD`` runs the CLI with a callback that, at a chosen step, prints ``ready`` and
waits for a line on its stdin. The test reads ``ready`` (a blocking read), does what it tests while the run is held
(a second writer, a signal, a kill), then writes the line; nothing here polls a clock.
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
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import ppmodels as api
from ppmodels.errors import RunError
from ppmodels_cli.main import app
from tests.cli.test_resume_after_kill import assert_same_run, records

runner = CliRunner()
TRAIN = ["train", "vae", "--data", "digits", "--hidden", "16", "--z-dim", "2", "--batch-size", "64", "--lr", "0.05",
         "--patience", "3", "--seed", "7", "--quiet", "--sample-every", "0"]
HELD = """
import sys
import ppmodels.runs.callbacks as callbacks
STEP = int(sys.argv[1])
def on_step_end(self, trainer, loss):
    if trainer.state.step == STEP:
        print("ready", flush=True)
        sys.stdin.readline()
callbacks.MetricsLog.on_step_end = on_step_end
from ppmodels_cli.main import app
app(sys.argv[2:], prog_name="ppmodels")
"""


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def held(step: int, args: list[str]) -> subprocess.Popen:
    """``ppmodels ARGS`` started and held at the end of step ``step`` (returns once it is held there)."""
    process = subprocess.Popen([sys.executable, "-c", HELD, str(step), *args], env=environment(), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        pytest.fail(f"the run ended before step {step}: {process.stderr.read()[-1500:]}")
    return process


def release(process: subprocess.Popen) -> tuple[int, str]:
    """Let a held process go on; its exit code and stderr."""
    _, err = process.communicate("go\n", timeout=300)
    return process.returncode, err


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ppmodels_cli.main", *args], env=environment(), capture_output=True, text=True, timeout=300)


def files(run: Path) -> dict:
    return {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file() and ".lock" not in p.parts}


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run the interrupted ones must repeat bitwise (5 epochs of 20 steps)."""
    run = tmp_path_factory.mktemp("reference") / "run"
    result = cli(*TRAIN, "--epochs", "5", "--out", str(run))
    assert result.returncode == 0, result.stderr
    return run


@pytest.mark.parametrize("signum, step, epoch", [(signal.SIGTERM, 47, 3), (signal.SIGINT, 87, 5)])
def test_signal_mid_epoch_checkpoints_and_resumes_exactly(tmp_path, reference, signum, step, epoch):
    """A signal during epoch 3 (step 47, of 20 steps an epoch), or during the last epoch: a checkpoint at that step
    boundary, one line naming the exact --resume command, exit code 128 + signal; the resumed run equals the
    uninterrupted one bitwise."""
    run = tmp_path / "run"
    process = held(step, [*TRAIN, "--epochs", "5", "--out", str(run)])
    process.send_signal(signum)
    code, err = release(process)
    assert code == 128 + signum, err
    line = one_error_line(err)
    resume = f"ppmodels train vae --out {run} --resume"
    assert line.startswith(f"stopped by {signal.Signals(signum).name} at epoch {epoch}, step {step}") and line.endswith(f"`{resume}`"), line
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert (state["epoch"], state["step"], state["epoch_batches"]) == (epoch, step, 7)
    assert [r["epoch"] for r in records(run)] == list(range(1, epoch))
    result = cli(*resume.split()[1:], "--quiet")
    assert result.returncode == 0, result.stderr
    assert_same_run(run, reference)


def test_checkpoint_every_steps_resumes_exactly_after_a_kill(tmp_path, reference):
    """--checkpoint-every-steps 5: killed (SIGKILL) at step 58, the run resumes from step 55 and ends bitwise equal."""
    run = tmp_path / "run"
    process = held(58, [*TRAIN, "--epochs", "5", "--out", str(run), "--checkpoint-every-steps", "5"])
    process.kill()
    process.communicate()
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert (state["epoch"], state["step"]) == (3, 55)
    result = cli("train", "vae", "--out", str(run), "--resume", "--quiet")
    assert result.returncode == 0, result.stderr
    assert_same_run(run, reference)


def test_a_second_writer_is_refused_while_the_first_lives(tmp_path, reference):
    """While a run trains: --resume, a second train --overwrite, and evaluate writing into the run are refused at once
    with one line naming the holder's pid; once it is killed (a stale lock) --resume takes the run over."""
    run = tmp_path / "run"
    process = held(30, [*TRAIN, "--epochs", "5", "--out", str(run)])
    try:
        for args in (["train", "vae", "--out", str(run), "--resume", "--quiet"], [*TRAIN, "--out", str(run), "--overwrite"],
                     ["evaluate", str(reference), "--iw-samples", "0", "--out", str(run / "evaluation.json")]):
            result = cli(*args)
            assert result.returncode == 2, result.stderr
            line = one_error_line(result.stderr)
            assert f"is being written by pid {process.pid} on host" in line, line
    finally:
        process.kill()
        process.communicate()
    result = cli("train", "vae", "--out", str(run), "--resume", "--quiet")  # the dead holder's lock is stale
    assert result.returncode == 0, result.stderr
    assert not (run / ".lock").exists()
    assert_same_run(run, reference)


@pytest.mark.parametrize("how", ["sigkill", "sigint", "diverges"])
def test_overwrite_keeps_the_old_run_until_the_new_one_succeeds(tmp_path, reference, how):
    """The old run stays byte for byte in RUN, loadable, whatever stops the new one; the new one is built in RUN.new."""
    run = tmp_path / "run"
    import shutil

    shutil.copytree(reference, run)
    before = files(run)
    new = [*TRAIN, "--epochs", "5", "--out", str(run), "--overwrite", "--seed", "8"]
    if how == "diverges":
        result = cli(*[a if a != "0.05" else "50" for a in new], "--skip-nonfinite")
        assert result.returncode == 2 and "training diverged" in one_error_line(result.stderr), result.stderr
    else:
        process = held(25, new)
        assert api.load(run) is not None  # loadable while the new run trains
        if how == "sigkill":
            process.kill()
            process.communicate()
        else:
            process.send_signal(signal.SIGINT)
            code, err = release(process)
            assert code == 130 and f"--out {run} --resume" in one_error_line(err), err
    assert files(run) == before  # a stale lock of the killed process aside
    api.load(run)
    if how == "diverges":
        return
    # --resume of RUN continues the replacement, and replaces RUN only once it finished
    result = cli("train", "vae", "--out", str(run), "--resume", "--quiet")
    assert result.returncode == 0, result.stderr
    assert not run.with_name("run.new").exists()
    assert json.loads((run / "config.json").read_text())["seed"] == 8
    api.load(run)


def test_overwrite_through_a_symlink_and_of_the_working_directory(tmp_path, reference, monkeypatch):
    import shutil

    run = tmp_path / "real"
    shutil.copytree(reference, run)
    link = tmp_path / "link"
    link.symlink_to(run)
    result = runner.invoke(app, [*TRAIN, "--epochs", "1", "--out", str(link), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and json.loads((run / "config.json").read_text())["train"]["epochs"] == 1
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    result = runner.invoke(app, [*TRAIN, "--epochs", "1", "--out", str(loop), "--overwrite"])
    assert result.exit_code == 2 and "symlink that loops" in one_error_line(result.stderr), result.output
    monkeypatch.chdir(run)
    for out in (".", ".."):
        result = runner.invoke(app, [*TRAIN, "--epochs", "1", "--out", out, "--overwrite"])
        assert result.exit_code == 2, result.output
        assert "holds the working directory" in one_error_line(result.stderr) or "not a ppmodels run folder" in result.stderr


def test_damaged_or_non_finite_weights_are_refused_on_load(tmp_path, reference):
    import shutil

    flipped = tmp_path / "flipped"
    shutil.copytree(reference, flipped)
    data = bytearray((flipped / "model.safetensors").read_bytes())
    for i in range(len(data) - 200, len(data) - 160):  # 40 bytes inside the last tensor: still a valid file
        data[i] ^= 0xFF
    (flipped / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(RunError, match="is damaged: its sha256"):
        api.load(flipped)
    nan = tmp_path / "nan"
    shutil.copytree(reference, nan)
    tensors = load_file(nan / "model.safetensors")
    key = next(iter(tensors))
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, nan / "model.safetensors", metadata={"model": "vae"})
    config = json.loads((nan / "config.json").read_text())
    del config["weights_sha256"]  # a run of an older ppmodels has no checksum: the NaN check still refuses it
    (nan / "config.json").write_text(json.dumps(config))
    for args in (["sample", str(nan), "--out", str(tmp_path / "s.npy")], ["evaluate", str(nan), "--iw-samples", "0"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "non-finite weights" in one_error_line(result.stderr), result.output


def sizes_and_seeds(run: Path, tmp: Path) -> dict[str, list[str]]:
    """Requests for more than memory holds, or seeds out of range: each is refused in one line before any work."""
    huge = tmp / "huge_z"
    import shutil

    shutil.copytree(run, huge)
    config = json.loads((huge / "config.json").read_text())
    config["model_config"]["z_dim"] = 10**12
    (huge / "config.json").write_text(json.dumps(config))
    text_data = tmp / "huge_z" / ".." / "text_data"
    shutil.copytree(run, text_data)
    config = json.loads((text_data / "config.json").read_text())
    (text_data / "config.json").write_text(json.dumps({**config, "data": "digits"}))
    small = ["--epochs", "1", "--quiet", "--sample-every", "0"]
    return {
        "--set hidden=[100000000]": ["train", "vae", "--set", "hidden=[100000000]", "--out", str(tmp / "a"), *small],
        "--z-dim 100000000": ["train", "vae", "--z-dim", "100000000", "--out", str(tmp / "b"), *small],
        "z_dim of 1e12 in config.json": ["evaluate", str(huge), "--iw-samples", "0", "--out", str(tmp / "e.json")],
        "sample --zoom 100000": ["sample", str(run), "--zoom", "100000", "--out", str(tmp / "z.png")],
        "sample --num 10000000 as a PNG": ["sample", str(run), "--num", "10000000", "--out", str(tmp / "big.png")],
        "evaluate --iw-samples 1e8": ["evaluate", str(run), "--iw-samples", "100000000", "--out", str(tmp / "iw.json")],
        "score --num-particles 1e8": ["score", str(run), "--data", "digits", "--num-particles", "100000000", "--out", str(tmp / "s.npz")],
        "diagnose --particles 1e8": ["diagnose", str(run), "--particles", "100000000", "--no-report", "--out", str(tmp / "d")],
        "train --seed -1": ["train", "vae", "--seed", "-1", "--out", str(tmp / "c"), *small],
        "train --seed 2**70": ["train", "vae", "--seed", str(2**70), "--out", str(tmp / "d2"), *small],
        "evaluate --seed -1": ["evaluate", str(run), "--seed", "-1", "--iw-samples", "0", "--out", str(tmp / "e2.json")],
        "score --seed 2**32": ["score", str(run), "--data", "digits", "--seed", str(2**32), "--out", str(tmp / "s2.npz")],
        "diagnose --seed -1": ["diagnose", str(run), "--seed", "-1", "--no-report", "--out", str(tmp / "d3")],
        "sample --seed -1": ["sample", str(run), "--seed", "-1", "--out", str(tmp / "s.npy")],
        "config.json whose data is a string": ["evaluate", str(text_data), "--iw-samples", "0"],
        "--devices above the cores": ["train", "vae", "--devices", str(os.cpu_count() + 1), "--out", str(tmp / "f"), *small],
    }


SIZES_AND_SEEDS = ["--set hidden=[100000000]", "--z-dim 100000000", "z_dim of 1e12 in config.json", "sample --zoom 100000",
                   "sample --num 10000000 as a PNG", "evaluate --iw-samples 1e8", "score --num-particles 1e8", "diagnose --particles 1e8",
                   "train --seed -1", "train --seed 2**70", "evaluate --seed -1", "score --seed 2**32", "diagnose --seed -1",
                   "sample --seed -1", "--devices above the cores", "config.json whose data is a string"]


@pytest.mark.parametrize("name", SIZES_AND_SEEDS)
def test_sizes_and_seeds_are_checked_before_any_work(tmp_path, reference, name):
    cases = sizes_and_seeds(reference, tmp_path)
    assert sorted(cases) == sorted(SIZES_AND_SEEDS)
    result = runner.invoke(app, cases[name])
    assert result.exit_code == 2, result.output
    line = one_error_line(result.stderr)
    assert line.startswith("error: ") and "; " in line, line
    assert not [p for p in tmp_path.iterdir() if p.name not in ("huge_z", "text_data")], "a refused request left something behind"


def test_api_arguments_raise_ppmodels_errors(reference):
    from ppmodels.errors import PPModelsError

    vae = api.load(reference)
    for call in (lambda: vae.sample(-1), lambda: vae.iw_log_likelihood(torch.rand(3, 1, 8, 8), 0)):
        with pytest.raises(PPModelsError):
            call()


def test_a_command_replaces_only_what_it_wrote_for_the_same_run(tmp_path, reference):
    """evaluate writes x.json for run A; evaluate of run B (or encode) may not replace it without --overwrite, and no
    command replaces another run's evaluation.json inside that run, even with --overwrite."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(reference, other)
    out = tmp_path / "x.json"
    first = runner.invoke(app, ["evaluate", str(reference), "--iw-samples", "0", "--out", str(out)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["evaluate", str(reference), "--iw-samples", "0", "--out", str(out)])
    assert again.exit_code == 0, again.output  # its own output, same run: replaced without asking
    written = out.read_bytes()
    result = runner.invoke(app, ["evaluate", str(other), "--iw-samples", "0", "--out", str(out)])
    assert result.exit_code == 2 and "pass --overwrite" in one_error_line(result.stderr), result.output
    assert out.read_bytes() == written
    result = runner.invoke(app, ["evaluate", str(other), "--iw-samples", "0", "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    own = runner.invoke(app, ["evaluate", str(other), "--iw-samples", "0"])  # other/evaluation.json, its own
    assert own.exit_code == 0, own.output
    before = (other / "evaluation.json").read_bytes()
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, ["evaluate", str(reference), "--iw-samples", "0", "--out", str(other / "evaluation.json"), *extra])
        assert result.exit_code == 2 and "part of run folder" in one_error_line(result.stderr), result.output
    assert (other / "evaluation.json").read_bytes() == before


def test_diagnose_holds_the_run_lock_while_it_writes(tmp_path, reference, monkeypatch):
    """While diagnose writes RUN/diagnostics/ (caught at its write of diagnostics.json), a second writer that asks for
    the run's lock is refused, naming diagnose's process; afterwards the lock is gone and can be taken."""
    import shutil

    import ppmodels.commands.diagnose as command
    from ppmodels.runs.lock import LOCK, acquire, release

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    refusals = []
    write_json = command.write_json

    def second_writer_then_write(path, obj):
        with pytest.raises(RunError, match=f"is being written by pid {os.getpid()} ") as refused:
            acquire(run, "a second writer")
        refusals.append(str(refused.value))
        write_json(path, obj)

    monkeypatch.setattr(command, "write_json", second_writer_then_write)
    command.diagnose(run, num_data=20, particles=25, report=False, predictive_draws=5)
    assert len(refusals) == 1 and (run / "diagnostics" / "diagnostics.json").is_file()
    assert not (run / LOCK).exists()
    acquire(run, "a later writer")
    release(run)


HOLD_PLUGIN = Path(__file__).parents[1] / "hold_plugin.py"
DDP = [*TRAIN, "--epochs", "3", "--devices", "2"]


def held_launch(run: Path, hold: str, tmp: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """``train --devices 2`` with rank 0 held at ``hold`` (tests/hold_plugin.py); returns once it is held there, and
    the folder of the ranks' pid files."""
    pids = tmp / "pids"
    pids.mkdir()
    env = {**environment(), "PPMODELS_PLUGINS": str(HOLD_PLUGIN), "PPMODELS_TEST_HOLD": hold, "PPMODELS_TEST_HOLD_PIDS": str(pids),
           "TMPDIR": str(tmp)}
    process = subprocess.Popen([sys.executable, "-m", "ppmodels_cli.main", *DDP, "--out", str(run), *extra], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        process.kill()
        pytest.fail(f"the run ended before it was held: {process.communicate(timeout=300)[1][-1500:]}")
    return process, pids


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_or_killed_launcher_of_two_processes_checkpoints_and_resumes(tmp_path, how):
    """--devices 2, rank 0 held at step 25 (epoch 2): SIGTERM to the launcher, which passes it on to both processes,
    or SIGKILL of the launcher, after which the kernel sends them SIGTERM (parent-death). Either way both stop at
    that step after a checkpoint and rank 0 prints the --resume line (the launcher exits 143 for SIGTERM); no process
    is left holding the run, and --resume --devices 2 trains the run to its end with every epoch once."""
    from ppmodels.runs.lock import alive, holders

    run = tmp_path / "run"
    process, _ = held_launch(run, "25:signal", tmp_path)
    process.send_signal(getattr(signal, how))
    _, err = process.communicate(timeout=300)  # returns when the workers too have closed the pipes they inherited
    assert process.returncode == (143 if how == "SIGTERM" else -signal.SIGKILL), err
    line = one_error_line(err)
    assert line.startswith("stopped by SIGTERM at epoch 2, step 25") and line.endswith(f"`ppmodels train vae --out {run} --resume --devices 2`"), line
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert (state["epoch"], state["step"]) == (2, 25)
    assert not [record for record in holders(run) if alive(record)]
    # torchrun's log folder is removed when the launcher ends; a launcher killed with SIGKILL cannot remove it
    assert len(launch_folders(tmp_path)) == (0 if how == "SIGTERM" else 1)
    result = cli("train", "vae", "--out", str(run), "--resume", "--devices", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert [r["epoch"] for r in records(run)] == [1, 2, 3]


@pytest.mark.slow
def test_timeout_ends_the_job_of_a_stopped_process_with_one_line(tmp_path):
    """--devices 2 --timeout 10: rank 1 stopped (SIGSTOP) while rank 0 is held at step 25; released, rank 0 waits in
    its next collective for 10 s, then the job ends with one line naming --timeout, exit 2, and torchrun ends the
    stopped process (SIGKILL after its grace period)."""
    run = tmp_path / "run"
    process, pids = held_launch(run, "25:stdin", tmp_path, "--timeout", "10")
    os.kill(int((pids / "rank1.pid").read_text()), signal.SIGSTOP)
    _, err = process.communicate("go\n", timeout=300)
    assert process.returncode == 2, err
    line = one_error_line(err)
    assert line.startswith("error (rank 0): training stopped because another process died or did not answer within --timeout 10 s"), line
    assert line.endswith("continue the run with --resume"), line
    assert not launch_folders(tmp_path)


def launch_folders(temp: Path) -> list[Path]:
    return [p for p in temp.iterdir() if p.name.startswith(("ppmodels-launch-", "torchelastic_"))]


def test_a_run_killed_before_its_config_was_written_is_started_again_as_the_hint_says(tmp_path):
    """kill -9 while config.json was being written leaves checkpoints/ and a .tmp file: --resume says to train without
    --resume, and that works (the hints once went round: train -> --overwrite -> "not a run folder")."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".config.json.x1y2.tmp").write_text('{"model": "va')
    result = runner.invoke(app, ["train", "vae", "--out", str(run), "--resume"])
    assert result.exit_code == 2 and "train without --resume" in one_error_line(result.stderr), result.output
    result = runner.invoke(app, [*TRAIN, "--epochs", "1", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert not list(run.glob(".*.tmp")) and api.load(run) is not None


def test_a_long_epoch_prints_progress_lines_off_a_terminal(digits, monkeypatch):
    """--min-epoch-steps makes an epoch long; off a terminal a line within the epoch shows the run is alive (every
    STEP_LINE_EVERY_S seconds; 0 here, so every step prints and nothing waits on a clock)."""
    import io

    from rich.console import Console

    from ppmodels.data import prepare_data
    from ppmodels.infer import ProgressBar, TrainConfig, Trainer, callbacks
    from ppmodels.models import VAE

    monkeypatch.setattr(callbacks, "STEP_LINE_EVERY_S", 0.0)
    console = Console(file=io.StringIO(), force_terminal=False)
    model = VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8])
    Trainer(TrainConfig(epochs=1, batch_size=256, patience=None, min_epoch_steps=12), [ProgressBar(console=console)]).fit(model, prepare_data(digits))
    lines = console.file.getvalue().splitlines()
    steps = -(-12 // -(-len(digits.splits["train"]) // 256)) * -(-len(digits.splits["train"]) // 256)  # whole passes, >= 12
    assert [line.split("  ")[1] for line in lines[:-1]] == [f"step {k} of about 12" for k in range(1, steps + 1)], lines
    assert lines[-1].startswith(f"epoch 1/1  {steps} steps")
