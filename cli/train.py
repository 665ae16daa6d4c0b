"""``ppmodels train``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import dataclasses

import typer

from ppmodels.commands.train import train as train_run
from ppmodels.errors import ConfigError
from ppmodels.infer import TrainConfig
from ppmodels.infer.distributed import close, init_from_env, launch_local, launched_by_torchrun
from ppmodels.runs import check_run_dir

from .common import handle_errors, parse_int_list, parse_settings


T = TrainConfig  # the training options' defaults come from TrainConfig, stated once there
TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig))

# options that may change on --resume: where the run is, where its data lies, and how it reports
RESUME_OPTIONS = {"model", "out", "resume", "quiet", "data_dir", "download", "device", "devices"}


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
    valid_labels: Annotated[Optional[int], typer.Option(min=0, help="With few labels (--labels, or a partly labeled file): how many of them to hold out, stratified, to choose the kept epoch (default: a fifth of each class's for models that select by accuracy; 0: keep the epoch by the validation ELBO). The validation split's labels are never read.")] = None,
    valid_data: Annotated[Optional[str], typer.Option(help="A labeled validation file (a data spec) to choose the kept epoch with, used whole; then no training label is held out.")] = None,
    protocol: Annotated[str, typer.Option(help="Where selection labels come from: budget (within the labels given), or paper (the validation split's labels, outside the budget, as Kingma et al. 2014).")] = "budget",
    epochs: Annotated[int, typer.Option(min=1, help="Maximum number of epochs.")] = T.epochs,
    batch_size: Annotated[int, typer.Option(min=1, help="Minibatch size.")] = T.batch_size,
    lr: Annotated[float, typer.Option(help="Adam learning rate, a number > 0.")] = T.lr,
    lr_patience: Annotated[Optional[int], typer.Option(min=1, help="Multiply the learning rate by --lr-factor after every this many epochs without a better validation score (down to lr/100; default: a constant rate).")] = T.lr_patience,
    lr_factor: Annotated[float, typer.Option(help="Factor for --lr-patience, between 0 and 1.")] = T.lr_factor,
    z_dim: Annotated[Optional[int], typer.Option(min=1, help="Latent size (model default if not given).")] = None,
    hidden: Annotated[Optional[str], typer.Option(help="Hidden layer sizes, comma-separated, e.g. 500,500.")] = None,
    likelihood: Annotated[Optional[str], typer.Option(help="bernoulli, gaussian, or binomial:N for data k/N (digits: binomial:16) (default: from the data's range).")] = None,
    net: Annotated[Optional[str], typer.Option(help="Encoder/decoder networks: mlp, or conv for C x H x W images (any number of channels).")] = None,
    corruption: Annotated[Optional[str], typer.Option(help="Denoising: none, mask or gaussian corruption of the encoder's input (the loss scores the clean x).")] = None,
    noise_level: Annotated[Optional[float], typer.Option(min=0, help="Masking rate, or Gaussian noise standard deviation, for --corruption.")] = None,
    binarize: Annotated[str, typer.Option(help="Binarize [0,1] data: none, threshold, or dynamic (resampled each epoch).")] = "none",
    max_per_class: Annotated[Optional[int], typer.Option(min=1, help="Keep at most this many training examples per class.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (data split, initialisation, batches).")] = T.seed,
    patience: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many epochs without a better validation score (--select-by).")] = T.patience,
    select_by: Annotated[str, typer.Option(help="Which epoch's weights to keep: auto (validation accuracy for models that train a classifier, else ELBO), valid_accuracy or valid_elbo.")] = T.select_by,
    min_epoch_steps: Annotated[Optional[int], typer.Option(min=0, help="Chain passes over the data until an epoch has this many steps (0: one pass; default: 100 for models that train a classifier, else one pass).")] = T.min_epoch_steps,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Write checkpoints/last.pt every this many epochs.")] = T.checkpoint_every,
    clip_norm: Annotated[Optional[float], typer.Option(min=0, help="Clip the gradient norm to this value.")] = T.clip_norm,
    skip_nonfinite: Annotated[bool, typer.Option(help="Skip batches with a non-finite loss or gradient instead of stopping.")] = T.skip_nonfinite,
    precision: Annotated[str, typer.Option(help="What the networks compute in while training: fp32, or bf16 (faster on CPUs with AVX512-BF16/AMX and recent GPUs, slower where emulated; weights, ELBO and evaluation stay float32).")] = T.precision,
    sample_every: Annotated[int, typer.Option(min=0, help="Save a PNG grid of samples every this many epochs (image data; 0: never).")] = 10,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Other model options as KEY=VALUE (repeatable), e.g. --set classifier=logistic; `ppmodels models MODEL` lists them with defaults.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder to write (default: runs/MODEL).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint, with its saved options.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress (by default a live bar with steps and ETA on a terminal, one line per epoch otherwise).")] = False,
    device: Annotated[str, typer.Option(help="Where to train: cpu, cuda, cuda:N, or auto (a GPU when torch sees one).")] = "cpu",
    devices: Annotated[int, typer.Option(min=1, help="Train data-parallel in this many processes on this machine (relaunches itself through torchrun; --batch-size stays the global batch).")] = 1,
) -> None:
    """Train MODEL on --data and write a run folder (config.json, metrics.jsonl, checkpoints/, model.safetensors, summary.json)."""
    if devices > 1 and not launched_by_torchrun():
        relaunch(devices, command_line(ctx))
    out = out or Path("runs") / model
    if resume:
        check_run_dir(out, resume=True)  # a folder that cannot be resumed is the first thing to hear about
        refuse_options_on_resume(ctx)
    options = {"z_dim": z_dim, "hidden": parse_int_list(hidden), "likelihood": likelihood, "net": net, "corruption": corruption,
               "noise_level": noise_level, **parse_settings(set_)}
    given = locals()
    config = TrainConfig(**{name: given[name] for name in TRAIN_OPTIONS})
    started = init_from_env(device)  # under torchrun: join the process group it describes
    try:
        _, summary = train_run(model, data, out, data_dir=data_dir, download=download, labels=labels, binarize=binarize,
                               max_per_class=max_per_class, train_config=config, model_options=options, overwrite=overwrite,
                               resume=resume, progress=not quiet, sample_every=sample_every, device=device, valid_labels=valid_labels,
                               valid_data=valid_data, protocol=protocol)
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
    counts, selection = summary.get("label_counts", {}), summary.get("selection", {})
    if any(counts.get("labeled_per_class", [])):
        typer.echo(f"labels: {summary['num_labels']} to train on (per class {' '.join(map(str, counts['labeled_per_class']))}), "
                   f"{counts['unlabeled']} unlabeled training rows")
    if selection:
        typer.echo(f"selection: {selection['labels']} labels ({selection['protocol']}: {selection['source']})")
    for warning in summary.get("test_warnings", []):
        typer.echo(f"WARNING: {warning}", err=True)


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


def relaunch(devices: int, argv: list[str]) -> None:
    """Run ``ppmodels *argv`` in ``devices`` processes through torchrun, then exit with its outcome."""
    code = launch_local(devices, argv)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        typer.echo(f"error: a training process was killed by signal {name}; continue the run with --resume", err=True)
    elif code not in (0, 2):  # 2: the workers said what went wrong
        typer.echo(f"error: a training process exited with code {code} (see its output above)", err=True)
    raise typer.Exit(0 if code == 0 else 2)
