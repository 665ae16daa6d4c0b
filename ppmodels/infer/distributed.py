"""Data-parallel training with ``torch.distributed``: what the trainer reads of an already-initialised process group.

The trainer never starts processes or a process group: whoever launches it does (``torchrun``, ``srun torchrun``,
Lightning Fabric, Ray Train), and :func:`world` reads the group. Every rank draws the same global batch from the
same seeded generator; :func:`rank_slice` keeps this rank's rows and rescales them so that DDP's mean of the ranks'
gradients equals the single-process estimator at the global batch. Rows left on disk are not read by every rank:
the trainer gives each rank a view of the training rows that knows its rank, and the batches drawn from it hold
only this rank's rows (the rest zero, dropped here; :func:`ppmodels.data.lazy.sharded_batches`). :func:`init_from_env` and :func:`launch_local`
serve the CLI: the first joins the group ``torchrun`` describes in the environment, the second is
``torchrun --standalone --nproc-per-node N -m ppmodels ...`` run from inside ``ppmodels train --devices N``.
"""

from __future__ import annotations

import ctypes
import datetime
import inspect
import logging
import os
import shutil
import signal
import sys
import tempfile
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..data.lazy import rank_share as _rows
from ..errors import ConfigError

LABELED_ROWS = ("x_labeled", "y_labeled", "labeled_weights")


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes: rank 0, or the only process."""
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def rank_slice(batch: dict[str, Any], rank: int, world_size: int) -> dict[str, Any]:
    """This rank's part of a global batch, scaled so that the mean over ranks of the slices' losses (what DDP's
    gradient averaging computes) equals the loss of the whole batch.

    Unlabeled rows (``x``) keep ``num_data`` global: a slice of ``b`` rows then stands for ``num_data / b`` each, and
    with an even split (``b = B / world_size``) the mean over ranks is ``num_data / B`` per row, as in one process;
    an uneven split (the last batch of an epoch) gives the slice ``num_data * world_size * b / B``, which keeps the
    mean exact. Labeled rows (``x_labeled``, ``y_labeled``, ``labeled_weights``) are weighted by the local labeled
    batch size: the weights ``1 / (B_l p_i)`` become ``1 / (b_l p_i)``, that is ``world_size`` times the global ones
    (exact for uneven splits too). A part with no rows on this rank is left out; other keys are copied.
    """
    if world_size == 1:
        return batch
    out = {key: value for key, value in batch.items() if key not in ("x", "num_data", "num_labeled", "alpha", *LABELED_ROWS)}
    if "x" in batch:
        size = len(batch["x"])
        rows = _rows(size, rank, world_size)
        local = rows.stop - rows.start
        if local:
            num_data = batch["num_data"]
            out["x"] = batch["x"][rows]
            out["num_data"] = num_data if local * world_size == size else num_data * world_size * local / size
    if "x_labeled" in batch:
        rows = _rows(len(batch["x_labeled"]), rank, world_size)
        if rows.stop > rows.start:
            out.update({key: batch[key][rows] for key in LABELED_ROWS})
            out["labeled_weights"] = out["labeled_weights"] * world_size
            out.update({key: batch[key] for key in ("num_labeled", "alpha") if key in batch})
    return out


class LossModule(nn.Module):
    """What DDP wraps: ``forward(batch)`` is the model's loss (its Pyro pair's ELBO). A rank whose slice of the
    global batch is empty returns a zero that still reaches every parameter, so DDP's reduction completes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        if not batch:
            return sum((p * 0).sum() for p in self.model.parameters() if p.requires_grad)
        return self.model.loss(batch)


def wrap(model: nn.Module, find_unused_parameters: bool) -> nn.Module:
    """The model's loss wrapped in DDP (the module holds the model's own parameters, so the optimizer is unchanged).
    ``find_unused_parameters``: the loss leaves some parameter without a gradient (a stage of a staged model)."""
    device = next(model.parameters()).device
    ids = [device] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # buffers (M2's class prior and feature mask) are computed alike on every rank; not broadcasting them keeps the
    # forward pass free of collectives, so a rank whose forward pass raised cannot desynchronise the others
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters else {"broadcast_buffers": False}
    return ddp(LossModule(model), device_ids=ids, find_unused_parameters=find_unused_parameters, **no_sync)


def noise_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """The seed of rank ``rank``'s Monte Carlo noise: ``seed`` itself for rank 0 (one process draws as before),
    an independent stream for the others; ``epoch`` > 0 gives fresh streams (a resume under another world size)."""
    if rank == 0 and epoch == 0:
        return seed
    return int(np.random.SeedSequence([seed, epoch], spawn_key=(rank,)).generate_state(1)[0])


def all_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """The sums over ranks of ``values`` (one all-reduce); the values themselves without a group."""
    if world()[1] == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (a list of one without a group)."""
    rank, world_size = world()
    if world_size == 1:
        return [obj]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


# ----- devices and launching (for the CLI) -------------------------------------------------------------------
def resolve_device(name: str = "cpu") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when torch sees one) as a device; under torchrun with GPUs
    each local rank takes ``cuda:LOCAL_RANK``."""
    if name == "cpu":
        return torch.device("cpu")
    if name not in ("auto", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")
    if not torch.cuda.is_available():
        if name == "auto":
            return torch.device("cpu")
        raise ConfigError(f"--device {name} asks for a GPU but torch sees none (torch {torch.__version__}); use --device cpu or auto")
    if name.startswith("cuda:"):
        return torch.device(name)
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(device: str = "cpu", timeout: float | None = None) -> bool:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on GPUs); returns whether this
    call started it (then the caller ends it with :func:`close`). Nothing happens outside torchrun or when a
    launcher already initialised the group. ``timeout``: seconds a collective waits for the other ranks (torch's
    default, 30 minutes, when ``None``). A process started by ``train --devices N`` dies with its launcher."""
    if not launched_by_torchrun() or dist.is_initialized():
        return False
    die_with_launcher()
    target = resolve_device(device)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    extra = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
    dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo", **extra)
    return True


#: the environment variable ``train --devices N`` sets to its own pid for the processes it starts
LAUNCHER_ENV = "PPMODELS_LAUNCHER_PID"


def die_with_launcher() -> None:
    """Linux: ask the kernel to send this process SIGTERM when its parent, the ``train --devices N`` launcher, dies
    (``prctl(PR_SET_PDEATHSIG)``), so no process trains on after its launcher was killed; the SIGTERM stops it at
    the next step boundary after a checkpoint. A launcher that died before this call ends the process at once."""
    launcher = os.environ.get(LAUNCHER_ENV)
    if launcher is None or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != int(launcher):
        os._exit(128 + int(signal.SIGTERM))


def close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch_local(nproc: int, argv: list[str]) -> int:
    """Run ``torchrun --standalone --nproc-per-node nproc -m ppmodels *argv`` in this process (torch's own launcher,
    on a free port); returns 0, or the exit code of the first failed worker (negative: killed by that signal). The
    launcher's log is silenced: the workers report for themselves (rank 0 prints results and errors). torchrun's
    log folder (by default a ``torchelastic_*`` folder left in the temp directory by every launch) is a folder of
    this launch's own, removed when the processes have ended, however they ended; only a launcher killed with
    SIGKILL leaves it (a ``ppmodels-launch-*`` folder in the temp directory)."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default too, without its warning
    scratch = tempfile.mkdtemp(prefix="ppmodels-launch-")
    args = parse_args(["--standalone", "--nproc-per-node", str(nproc), "--log-dir", scratch, "-m", "ppmodels", *argv])
    logging.disable(logging.CRITICAL)
    try:
        run(args)
    except SignalException as exc:  # the launcher got SIGTERM/SIGINT: torchrun passed it on to the processes, which
        return 128 + int(exc.sigval)  # stopped after a checkpoint and printed the --resume line
    except ChildFailedError as exc:
        failures = sorted(exc.failures.values(), key=lambda failure: failure.timestamp)  # the first, not the ones it took down
        return next((f.exitcode for f in failures if f.exitcode == 2), failures[0].exitcode if failures else 1)
    finally:
        logging.disable(logging.NOTSET)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0
