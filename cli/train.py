"""``ppmodels train``."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import dataclasses

import torch
import typer

from ppmodels.commands.train import train as train_run
from ppmodels.config import bounds_in_words
from ppmodels.errors import ConfigError, PPModelsError
from ppmodels.infer import TrainConfig
from ppmodels.infer.distributed import LAUNCHER_ENV, close, init_from_env, launch_local, launched_by_torchrun
from ppmodels.infer.preemption import exit_code
from ppmodels.runs import check_run_dir, run_lock
from ppmodels.runs.lock import HOLDER_ENV

from .common import handle_errors, parse_int_list, parse_settings
from .evaluate import echo_quality


T = TrainConfig  # the training options' defaults, bounds and meanings come from TrainConfig, stated once there
TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def field_help(name: str) -> str:
    """The help of the option that sets TrainConfig's field ``name``: the field's description and bounds (checked when
    TrainConfig is built, which names the option in its one-line error)."""
    field = TrainConfig.__pydantic_fields__[name]
    text = " ".join(field.description.replace("``", "`").split())
    bounds = bounds_in_words(field)
    return text[:1].upper() + text[1:] + (f" Must be {bounds}." if bounds else "")

# options that may change on --resume: where the run is, where its data lies, and how it reports
RESUME_OPTIONS = {"model", "out", "resume", "quiet", "data_dir", "download", "device", "devices", "oversubscribe", "timeout"}


def refuse_options_on_resume(ctx: typer.Context) -> None:
    """``--resume`` continues with the options saved in config.json; others given with it would be silently ignored."""
    given = [name for name in ctx.params if name not in RESUME_OPTIONS and getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"]
    if given:
        flags = ", ".join("--" + ("set" if name == "set_" else name.replace("_", "-")) for name in given)
        raise ConfigError(f"--resume continues the run with the options saved in its config.json, so {flags} would be ignored; "
                          "drop them (to train longer, raise train.epochs in config.json)")


@handle_errors
def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Registered model name (see `ppmodels models`).")],
    data: Annotated[str, typer.Option(help="Data spec: digits, mnist, npz:PATH, npy:PATH, csv:PATH?label=COL, h5:PATH, zarr:PATH (docs/data.md); image cubes cube:PATH, mat:PATH, indian_pines (docs/hyperspectral.md).")] = "digits",
    data_dir: Annotated[Optional[str], typer.Option(help="Folder to look for data files in first (MNIST).")] = None,
    download: Annotated[bool, typer.Option(help="Download missing data files (checksummed, cached).")] = False,
    labels: Annotated[Optional[int], typer.Option(min=0, help="Keep this many class-balanced training labels; hide the rest (a partly labeled file: every given label is used unless this caps them).")] = None,
    valid_labels: Annotated[Optional[int], typer.Option(min=0, help="With few labels (--labels, or a partly labeled file): how many of them to hold out, stratified, to choose the kept epoch (default: a fifth of each class's for models that select by accuracy, when that is at least 3 a class, i.e. 13 labels a class and up; else, and with 0, the validation ELBO keeps the epoch). The validation split's labels are never read.")] = None,
    valid_data: Annotated[Optional[str], typer.Option(help="A labeled validation file (a data spec) to choose the kept epoch with, used whole; then no training label is held out.")] = None,
    protocol: Annotated[str, typer.Option(help="Where selection labels come from: budget (within the labels given), or paper (the validation split's labels, outside the budget, as Kingma et al. 2014).")] = "budget",
    epochs: Annotated[int, typer.Option(help=field_help("epochs"))] = T.epochs,
    batch_size: Annotated[int, typer.Option(help=field_help("batch_size"))] = T.batch_size,
    lr: Annotated[float, typer.Option(help=field_help("lr"))] = T.lr,
    lr_patience: Annotated[Optional[int], typer.Option(help=field_help("lr_patience"))] = T.lr_patience,
    lr_factor: Annotated[float, typer.Option(help=field_help("lr_factor"))] = T.lr_factor,
    average_epochs: Annotated[int, typer.Option(help=field_help("average_epochs"))] = T.average_epochs,
    average_stages: Annotated[str, typer.Option(help=field_help("average_stages"))] = T.average_stages,
    z_dim: Annotated[Optional[int], typer.Option(min=1, help="Latent size (model default if not given).")] = None,
    hidden: Annotated[Optional[str], typer.Option(help="Hidden layer sizes, comma-separated, e.g. 500,500.")] = None,
    likelihood: Annotated[Optional[str], typer.Option(help="bernoulli, gaussian, or binomial:N for data k/N (digits: binomial:16) (default: from the data's range).")] = None,
    net: Annotated[Optional[str], typer.Option(help="Encoder/decoder networks: mlp, or conv for C x H x W images (any number of channels).")] = None,
    corruption: Annotated[Optional[str], typer.Option(help="Denoising: none, mask or gaussian corruption of the encoder's input (the loss scores the clean x).")] = None,
    noise_level: Annotated[Optional[float], typer.Option(min=0, help="Masking rate, or Gaussian noise standard deviation, for --corruption.")] = None,
    binarize: Annotated[str, typer.Option(help="Binarize [0,1] data: none, threshold, or dynamic (resampled each epoch).")] = "none",
    max_per_class: Annotated[Optional[int], typer.Option(min=1, help="Keep at most this many training examples per class.")] = None,
    seed: Annotated[int, typer.Option(help=field_help("seed"))] = T.seed,
    patience: Annotated[Optional[int], typer.Option(help=field_help("patience"))] = T.patience,
    select_by: Annotated[str, typer.Option(help=field_help("select_by"))] = T.select_by,
    cv_folds: Annotated[Optional[int], typer.Option(help=field_help("cv_folds"))] = T.cv_folds,
    min_epoch_steps: Annotated[Optional[int], typer.Option(help=field_help("min_epoch_steps"))] = T.min_epoch_steps,
    checkpoint_every: Annotated[int, typer.Option(help=field_help("checkpoint_every"))] = T.checkpoint_every,
    checkpoint_every_steps: Annotated[Optional[int], typer.Option(help=field_help("checkpoint_every_steps"))] = T.checkpoint_every_steps,
    clip_norm: Annotated[Optional[float], typer.Option(help=field_help("clip_norm"))] = T.clip_norm,
    skip_nonfinite: Annotated[bool, typer.Option(help=field_help("skip_nonfinite"))] = T.skip_nonfinite,
    precision: Annotated[str, typer.Option(help=field_help("precision"))] = T.precision,
    sample_every: Annotated[int, typer.Option(min=0, help="Save a PNG grid of samples every this many epochs (image data; 0: never).")] = 10,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Other model options as KEY=VALUE (repeatable), e.g. --set classifier=logistic; `ppmodels models MODEL` lists them with defaults.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder to write (default: runs/MODEL).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint, with its saved options.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress (by default a live bar with steps and ETA on a terminal, one line per epoch otherwise).")] = False,
    device: Annotated[str, typer.Option(help="Where to train: cpu, cuda, cuda:N, or auto (a GPU when torch sees one).")] = "cpu",
    devices: Annotated[int, typer.Option(min=1, help="Train data-parallel in this many processes on this machine (relaunches itself through torchrun; --batch-size stays the global batch).")] = 1,
    oversubscribe: Annotated[bool, typer.Option(help="Allow --devices above this machine's CPU cores (or GPUs with --device cuda).")] = False,
    timeout: Annotated[int, typer.Option(min=1, help="Seconds a data-parallel process waits for the others in a collective before the run ends with one line (a stalled or stopped rank).")] = 1800,
) -> None:
    """Train MODEL on --data and write a run folder (config.json, metrics.jsonl, checkpoints/, model.safetensors, summary.json)."""
    out = out or Path("runs") / model
    if devices > 1 and not launched_by_torchrun():
        check_devices(devices, device, oversubscribe)
        target = check_run_dir(out, overwrite=overwrite, resume=resume)  # refused here once, not by every process
        with run_lock(target):  # the launcher holds the run's lock; its processes join it (ppmodels.runs.lock)
            os.environ[HOLDER_ENV] = str(target.resolve())
            os.environ[LAUNCHER_ENV] = str(os.getpid())
            try:
                relaunch(devices, command_line(ctx))
            finally:  # its processes have ended: a later command in this process (a test runner, a notebook) is no worker
                os.environ.pop(HOLDER_ENV, None)
                os.environ.pop(LAUNCHER_ENV, None)
    if resume:
        check_run_dir(out, resume=True)  # a folder that cannot be resumed is the first thing to hear about
        refuse_options_on_resume(ctx)
    options = {"z_dim": z_dim, "hidden": parse_int_list(hidden), "likelihood": likelihood, "net": net, "corruption": corruption,
               "noise_level": noise_level, **parse_settings(set_)}
    given = locals()
    config = TrainConfig(**{name: given[name] for name in TRAIN_OPTIONS})
    started = init_from_env(device, timeout)  # under torchrun: join the process group it describes
    try:
        _, summary = train_run(model, data, out, data_dir=data_dir, download=download, labels=labels, binarize=binarize,
                               max_per_class=max_per_class, train_config=config, model_options=options, overwrite=overwrite,
                               resume=resume, progress=not quiet, sample_every=sample_every, device=device, valid_labels=valid_labels,
                               valid_data=valid_data, protocol=protocol)
    except RuntimeError as exc:
        if not started or isinstance(exc, PPModelsError):
            raise
        peer_failed(exc, timeout)
    finally:
        if started:
            close()
    if not summary:  # a rank other than 0 of a data-parallel run: rank 0 reports
        return
    typer.echo(f"run folder: {out}")
    for key in ("epochs", "train_elbo", "valid_elbo", "test_elbo", "test_accuracy", "test_balanced_accuracy", "test_cluster_accuracy",
                "wall_time_s"):
        if key in summary:
            value = summary[key]
            typer.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if summary.get("sample_quality"):
        echo_quality(summary["sample_quality"])
    counts, selection = summary.get("label_counts", {}), summary.get("selection", {})
    if any(counts.get("labeled_per_class", [])):
        typer.echo(f"labels: {summary['num_labels']} to train on (per class {' '.join(map(str, counts['labeled_per_class']))}), "
                   f"{counts['unlabeled']} unlabeled training rows")
    if selection:
        typer.echo(f"selection: {selection['labels']} labels ({selection['protocol']}: {selection['source']})")
    if summary.get("test_note"):
        typer.echo(summary["test_note"])
    for warning in summary.get("test_warnings", []) + summary.get("warnings", []):
        typer.echo(f"WARNING: {warning}", err=True)


def peer_failed(exc: RuntimeError, timeout: int) -> None:
    """A collective of a data-parallel run failed (a process died, or stalled past --timeout): one line, not gloo's or
    nccl's traceback, and the process ends at once (its peers are gone, torch's teardown could hang)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    typer.echo(f"error (rank {os.environ.get('RANK', '?')}): training stopped because another process died or did not answer within "
               f"--timeout {timeout} s ({first}); continue the run with --resume", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)


def command_line(ctx: typer.Context) -> list[str]:
    """The arguments this ``train`` was given (and the app's ``--plugin`` options), rebuilt from the parsed
    parameters, so that the relaunched processes run the same command however this one was called."""
    args = []
    for context in (ctx.parent, ctx):
        if context is None:
            continue
        if context is ctx:
            args.append(ctx.info_name or "train")
        for param in context.command.params:
            value = context.params.get(param.name)
            if getattr(context.get_parameter_source(param.name), "name", "") != "COMMANDLINE" or value is None:
                continue
            if not getattr(param, "opts", None) or param.param_type_name == "argument":
                args.append(str(value))
            elif getattr(param, "is_flag", False) and getattr(param, "is_bool_flag", False):
                args.append(param.opts[0] if value else param.secondary_opts[0])
            else:
                args.extend(item for v in (value if param.multiple else [value]) for item in (param.opts[0], str(v)))
    return args


def check_devices(devices: int, device: str, oversubscribe: bool) -> None:
    """Refuse more processes than the machine has CPU cores (or GPUs, for ``--device cuda``) unless asked to."""
    gpus = device != "cpu" and torch.cuda.is_available()
    have = torch.cuda.device_count() if gpus else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if devices > have and not oversubscribe:
        what = "GPUs" if gpus else "CPU cores"
        raise ConfigError(f"--devices {devices} starts more processes than this machine's {have} {what}; pass --devices {have} or less "
                          f"(or --oversubscribe to start them anyway)")


def relaunch(devices: int, argv: list[str]) -> None:
    """Run ``ppmodels *argv`` in ``devices`` processes through torchrun, then exit with its outcome: 0, 130/143 when
    a signal stopped them after a checkpoint (rank 0 printed the ``--resume`` line), else 2."""
    code = launch_local(devices, argv)
    if code in (exit_code(signal.SIGINT), exit_code(signal.SIGTERM)):
        raise typer.Exit(code)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        typer.echo(f"error: a training process was killed by signal {name}; continue the run with --resume", err=True)
    elif code not in (0, 2):  # 2: the workers said what went wrong
        typer.echo(f"error: a training process exited with code {code} (see its output above)", err=True)
    raise typer.Exit(0 if code == 0 else 2)
