"""Data-parallel training: rank slices, two gloo processes against one, exact resume, kill -9, a NaN on one rank.

The two-process tests start real processes (``ddp_worker.py``, two ranks of a gloo group on a free port, as torchrun
would; or the CLI's ``--devices 2``, which runs torchrun itself) and always with a timeout, so a hang fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ppmodels.data import load_dataset, prepare_data
from ppmodels.files import load_checkpoint
from ppmodels.infer.distributed import noise_seed, rank_slice
from ppmodels.models import get_model_class
from tests.helpers import assert_close_scaled

HERE = Path(__file__).parent
GLOBAL_BATCH = 200
_spec = importlib.util.spec_from_file_location("ddp_worker", HERE / "ddp_worker.py")
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----- rank slices (no processes) -------------------------------------------------------------------------------
def ssl_batch(batch_size: int = 7, labeled: int = 5) -> dict:
    return {"x": torch.randn(batch_size, 3), "num_data": 100, "x_labeled": torch.randn(labeled, 3),
            "y_labeled": torch.arange(labeled), "labeled_weights": torch.rand(labeled) + 0.5, "num_labeled": 20, "alpha": 0.3}


@pytest.mark.parametrize("world_size", [2, 3, 8])
def test_rank_slices_together_are_the_batch(world_size):
    batch = ssl_batch()
    parts = [rank_slice(batch, rank, world_size) for rank in range(world_size)]
    for key in ("x", "x_labeled", "y_labeled"):
        assert torch.equal(torch.cat([p[key] for p in parts if key in p]), batch[key])
    # each rank weights its labeled slice by its local batch size: world_size times the global weights, so the mean
    # over ranks of the weighted sums is the global weighted sum
    weights = torch.cat([p["labeled_weights"] for p in parts if "labeled_weights" in p])
    assert torch.allclose(weights, batch["labeled_weights"] * world_size)
    # the unlabeled rows: a slice of b rows stands for num_data/b each as Pyro's plate scales it; the mean over ranks
    # gives every row num_data/B, as one process does
    per_row = torch.cat([torch.full((len(p["x"]),), p["num_data"] / len(p["x"])) for p in parts if "x" in p]) / world_size
    assert torch.allclose(per_row, torch.full((7,), 100 / 7))
    assert all(p["num_data"] == 100 for p in parts if "x" in p and len(p["x"]) * world_size == 7)
    assert all(p["alpha"] == 0.3 and p["num_labeled"] == 20 for p in parts if "x_labeled" in p)
    assert rank_slice(batch, 0, 1) is batch


@pytest.mark.numerical
@pytest.mark.parametrize("name", ["ppca", "gmm"])
def test_mean_of_rank_losses_and_gradients_is_the_single_process_one(name):
    """What DDP computes (the mean over ranks of each slice's loss gradient) equals the global batch's gradient,
    for an uneven last batch too (131 rows over 2 and 3 ranks)."""
    data = prepare_data(load_dataset("digits"))
    cls = get_model_class(name)
    model = cls(cls.config_from_data(data.dataset, seed=0))
    model.before_fit(data)
    batch = next(model.training_batches(data.train, 131, torch.Generator().manual_seed(0)))

    def loss_and_grads(b):
        model.zero_grad()
        loss = model.loss(b)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    loss, grads = loss_and_grads(batch)
    for world_size in (2, 3):
        parts = [loss_and_grads(rank_slice(batch, rank, world_size)) for rank in range(world_size)]
        assert sum(p[0] for p in parts) / world_size == pytest.approx(loss, rel=1e-5)
        for i, g in enumerate(grads):
            mean = sum(p[1][i] for p in parts) / world_size
            assert_close_scaled(mean, g, rel=1e-5, what=f"parameter {i}, {world_size} ranks")


def test_noise_seeds_differ_by_rank_and_rank_zero_keeps_the_seed():
    assert noise_seed(5, 0) == 5
    seeds = {noise_seed(5, rank) for rank in range(4)} | {noise_seed(5, rank, epoch=3) for rank in range(4)}
    assert len(seeds) == 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cpu_is_the_default_and_a_missing_gpu_is_refused_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from ppmodels.errors import ConfigError
    from ppmodels.infer.distributed import resolve_device
    from ppmodels_cli.main import app

    assert resolve_device().type == "cpu" and resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    result = CliRunner().invoke(app, ["train", "ppca", "--epochs", "1", "--device", "cuda", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and result.output.startswith("error: --device cuda asks for a GPU but torch sees none")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_devices_relaunches_the_command_it_was_given(monkeypatch):
    """``--devices N`` hands torchrun the command line rebuilt from the parsed options (so it works from a shell,
    from Python and from the docs tests alike), and exits with the workers' outcome."""
    from typer.testing import CliRunner

    import ppmodels_cli.train as train_command
    from ppmodels_cli.main import app

    calls = []
    monkeypatch.setattr(train_command, "launch_local", lambda n, argv: calls.append((n, argv)) or -9)
    args = ["train", "vae", "--epochs", "3", "--no-skip-nonfinite", "--set", "a=1",
            "--set", "b=2", "--out", "a b", "--quiet", "--devices", "2"]
    result = CliRunner().invoke(app, args)
    assert calls == [(2, args)]
    assert result.exit_code == 2
    assert result.output.strip() == "error: a training process was killed by signal SIGKILL; continue the run with --resume"


# ----- two gloo processes ---------------------------------------------------------------------------------------
#: how a rank says that the port free_port() found was taken before rank 0 bound it (torch's TCPStore: EADDRINUSE)
PORT_TAKEN = "address already in use"


def run_ranks(out: Path, port: int, timeout: float = 600) -> tuple[list[int | None], list[str]]:
    """Start both ranks of ddp_worker.py on ``port`` and wait for them; if one fails, stop the other at once (it
    would wait for the rendezvous until its own timeout). Returns their exit codes and stderr."""
    procs, logs = [], [out / f"rank{rank}.stderr" for rank in range(2)]
    for rank in range(2):
        env = environment(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        with logs[rank].open("w") as log:
            procs.append(subprocess.Popen([sys.executable, str(HERE / "ddp_worker.py"), str(out), str(GLOBAL_BATCH), *worker.CASES, "m2_resume"],
                                          env=env, stderr=log, text=True))
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    return [p.returncode for p in procs], [log.read_text() for log in logs]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Both ranks' results for every case of ddp_worker.py at the global batch GLOBAL_BATCH.

    free_port() releases its port before rank 0 binds it, so under ``pytest -n 2`` another test can take it in
    between: then (and only then) the two ranks start again on another port."""
    out = tmp_path_factory.mktemp("ddp")
    for _ in range(3):
        codes, errors = run_ranks(out, free_port())
        if codes == [0, 0] or not any(PORT_TAKEN in e.lower() for e in errors):
            break
    assert codes == [0, 0], errors
    return out


def load_rank(out: Path, name: str, rank: int) -> dict:
    return torch.load(out / f"{name}_rank{rank}.pt", weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppca", "gmm"])
def test_two_processes_at_batch_b_equal_one_process_at_batch_2b(two_ranks, name):
    """PPCA (exact posterior: the ELBO estimator has no noise) and the GMM (label enumerated by TraceEnum_ELBO) are
    deterministic, so two ranks on halves of each global batch must follow one process on the whole batch."""
    model, records = worker.run_case(name, GLOBAL_BATCH)
    got = load_rank(two_ranks, name, 0)
    assert len(got["records"]) == len(records) == worker.CASES[name][2]
    for mine, theirs in zip(records, got["records"]):
        assert mine["step"] == theirs["step"]
        for key in ("train_elbo", "valid_elbo"):
            assert theirs[key] == pytest.approx(mine[key], rel=1e-5)
    for key, value in model.state_dict().items():
        assert_close_scaled(got["weights"][key], value, rel=1e-5, what=key)
        assert torch.equal(load_rank(two_ranks, name, 1)["weights"][key], got["weights"][key])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["m2", "m1m2"])
def test_models_with_monte_carlo_noise_end_with_identical_weights_on_both_ranks(two_ranks, name):
    ranks = [load_rank(two_ranks, name, rank) for rank in range(2)]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    assert [r["ddp_alive"] for r in ranks] == [0, 0]  # training let go of DDP while the process group lived
    if name == "m1m2":  # both stages ran: the M1 epoch, then the M2 epoch (its find_unused_parameters path)
        assert [r["stage"] for r in ranks[0]["records"]] == ["m1", "m2"]
        assert "valid_accuracy" in ranks[0]["records"][1]


@pytest.mark.slow
def test_resume_with_the_same_processes_repeats_the_uninterrupted_run(two_ranks):
    """M2 draws Monte Carlo noise on every rank: 2 epochs + resume to 3 equals 3 straight only if every rank's
    random state came back from checkpoints/last.pt."""
    for rank in range(2):
        run = load_rank(two_ranks, "m2_resume", rank)
        for key, value in run["straight"]["weights"].items():
            assert torch.equal(run["resumed"]["weights"][key], value), (rank, key)
    rank0 = load_rank(two_ranks, "m2_resume", 0)
    assert rank0["resumed"]["records"] == [{**rank0["straight"]["records"][-1], "elapsed": rank0["resumed"]["records"][0]["elapsed"]}]
    payload = load_checkpoint(two_ranks / "m2_resumed" / "checkpoints" / "last.pt")  # weights_only=True
    assert payload["world_size"] == 2 and len(payload["rng_ranks"]) == 2
    assert not torch.equal(payload["rng_ranks"][0]["torch"], payload["rng_ranks"][1]["torch"])  # a noise stream per rank
    assert torch.equal(payload["rng_ranks"][0]["batches"], payload["rng_ranks"][1]["batches"])  # one batch order


@pytest.mark.slow
def test_resume_under_another_process_count_warns_and_goes_on(two_ranks, tmp_path):
    from ppmodels.errors import ResumeWarning
    from ppmodels.infer import TrainConfig, fit

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes((two_ranks / "m2_resumed" / "checkpoints" / "last.pt").read_bytes())
    _, options, _, labels = worker.CASES["m2"]
    data = prepare_data(load_dataset("digits"), num_labels=labels, seed=0)
    model = get_model_class("m2")(get_model_class("m2").config_from_data(data.dataset, **options))
    with pytest.warns(ResumeWarning, match="written by 2 process"):
        fit(model, data, TrainConfig(epochs=4, batch_size=GLOBAL_BATCH, lr=0.01, patience=None, seed=0), run_dir=run_dir, resume=True)
    assert model.train_state_.epoch == 4


# ----- the CLI under --devices 2 --------------------------------------------------------------------------------
def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ppmodels", *args]


def epochs_of(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
def test_kill_9_under_two_processes_then_resume_continues_the_epochs(tmp_path):
    """Worker rank 1 SIGKILLs itself (tests/kill_plugin.py) right after epoch 2, before that epoch's checkpoint."""
    run = tmp_path / "run"
    train = ["train", "vae", "--hidden", "16", "--z-dim", "2", "--batch-size", "64", "--epochs", "6", "--patience", "10",
             "--quiet", "--sample-every", "0", "--devices", "2", "--out", str(run)]
    kill = environment(PPMODELS_PLUGINS=str(HERE.parent / "kill_plugin.py"), PPMODELS_TEST_KILL="on_epoch_end:2", PPMODELS_TEST_KILL_RANK="1")
    process = subprocess.run(cli(*train), env=kill, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert process.returncode == 2, process.stderr[-2000:]
    errors = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "another process died" in errors[0], process.stderr  # rank 0's one line, no gloo traceback
    assert load_checkpoint(run / "checkpoints" / "last.pt")["state"]["epoch"] == 1  # epoch 2's never came: rank 1 was gone
    resumed = subprocess.run(cli("train", "vae", "--out", str(run), "--resume", "--devices", "2", "--quiet"), env=environment(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert epochs_of(run) == [1, 2, 3, 4, 5, 6]  # no epoch lost, none twice
    assert json.loads((run / "summary.json").read_text())["epochs"] == 6


NAN_PLUGIN = '''
import torch.distributed as dist
from ppmodels.models.ppca import PPCA
from ppmodels.registry import register_model


@register_model("ppca_nan_on_rank1")
class PPCANanOnRank1(PPCA):
    """PPCA whose loss turns NaN on rank 1 from its 10th step (epoch 2: digits at batch 200 has 7 steps an epoch)."""

    steps = 0

    def loss(self, batch):
        loss = super().loss(batch)
        PPCANanOnRank1.steps += 1
        if dist.is_initialized() and dist.get_rank() == 1 and PPCANanOnRank1.steps >= 10:
            return loss * float("nan")
        return loss
'''


@pytest.mark.slow
def test_nan_on_one_rank_stops_both_with_one_error_line(tmp_path):
    plugin, run = tmp_path / "nan_plugin.py", tmp_path / "run"
    plugin.write_text(NAN_PLUGIN)
    result = subprocess.run(cli("--plugin", str(plugin), "train", "ppca_nan_on_rank1", "--set", "optimizer=adam", "--batch-size", "200", "--epochs", "5",
                                "--quiet", "--sample-every", "0", "--devices", "2", "--out", str(run)),
                            env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: the loss became non-finite at epoch 2"), result.stderr
    assert "on 1 of 2 ranks; rank 1:" in errors[0]
    assert "checkpoints/last.pt (epoch 1), left untouched" in errors[0]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["state"]["epoch"] == 1
    assert epochs_of(run) == [1]


@pytest.mark.slow
def test_each_process_reads_its_share_of_data_on_disk_records_the_launch_and_leaves_no_temp_folder(tmp_path):
    """--devices 2 on an npy file left on disk (blocks of 64 rows, tests/read_count_plugin.py): in every epoch each
    process reads about half the rows one process reads, together no more than one process plus the rows at the
    edges of their pieces; config.json and summary.json record 2 processes, cpu and gloo; the launch leaves nothing
    in the temp folder that a one-process run does not (torch's own per-user ``torchinductor_*`` cache)."""
    rows = np.random.default_rng(0).random((3000, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", rows)
    counts = {}
    for devices in (1, 2):
        reads, temp, run = (tmp_path / f"{name}{devices}" for name in ("reads", "tmp", "run"))
        reads.mkdir()
        temp.mkdir()
        env = environment(PPMODELS_PLUGINS=str(HERE.parent / "read_count_plugin.py"), PPMODELS_TEST_READS=str(reads), TMPDIR=str(temp))
        result = subprocess.run(cli("train", "vae", "--data", f"npy:{tmp_path / 'x.npy'}", "--hidden", "8", "--z-dim", "2", "--batch-size", "100",
                                    "--epochs", "2", "--quiet", "--sample-every", "0", "--devices", str(devices), "--out", str(run)),
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        counts[devices] = [json.loads((reads / f"rank{rank}.json").read_text()) for rank in range(devices)]
        assert not [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")]
        for record in ("config.json", "summary.json"):
            launch = json.loads((run / record).read_text())
            assert (launch["processes"], launch["device"], launch.get("backend")) == (devices, "cpu", "gloo" if devices == 2 else None)
    (alone,), ranks = counts[1], counts[2]
    assert len(alone) == len(ranks[0]) == len(ranks[1]) == 2
    for epoch, one in enumerate(alone):
        assert len(set(one)) == len(one) > 1500  # one process reads each row of its spans once an epoch
        per_rank = [len(rank[epoch]) for rank in ranks]
        assert sum(per_rank) <= len(one) + 4 * 64, (per_rank, len(one))
        assert all(abs(count - len(one) / 2) <= 2 * 64 + 100 for count in per_rank), (per_rank, len(one))
        # one process reads through the gaps (validation and test rows) between the pieces the two ranks read
        assert len(set(one) - set(ranks[0][epoch]) - set(ranks[1][epoch])) <= 2 * 64


@pytest.mark.slow
def test_ranks_reading_their_share_from_disk_keep_the_batch_generator_in_step(tmp_path):
    """M2 on digits left on disk (npy), dynamic binarization (a transform that draws from the batch generator) and
    labeled batches drawn by index (7 rows: 3 on rank 0, 4 on rank 1), under --devices 2: every rank reads only its
    rows, yet the ranks' batch generators, which choose every global batch, end in the same state
    (checkpoints/last.pt keeps each rank's). With the transform applied to a rank's own rows only, they part."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.save(tmp_path / "x.npy", (digits.data / 16).astype(np.float32))
    np.save(tmp_path / "y.npy", digits.target)
    run = tmp_path / "run"
    result = subprocess.run(cli("train", "m2", "--data", f"npy:{tmp_path / 'x.npy'}?labels=y.npy", "--labels", "50", "--binarize", "dynamic",
                                "--set", "labeled_batch_size=7", "--batch-size", "99", "--hidden", "16", "--z-dim", "2", "--epochs", "2",
                                "--min-epoch-steps", "0", "--quiet", "--sample-every", "0",
                                "--devices", "2", "--out", str(run)),
                            env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    ranks = load_checkpoint(run / "checkpoints" / "last.pt")["rng_ranks"]
    assert len(ranks) == 2 and torch.equal(ranks[0]["batches"], ranks[1]["batches"])
    assert not torch.equal(ranks[0]["torch"], ranks[1]["torch"])  # each rank's own Monte Carlo noise
