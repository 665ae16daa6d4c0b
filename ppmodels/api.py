"""Importable functions behind the CLI commands: train, encode, sample. The CLI only parses options and calls these."""

from __future__ import annotations

import dataclasses
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

from .data import Dataset, TrainData, load_dataset, prepare_data
from .errors import ConfigError, DataError, RunError
from .metrics import classification_report, clustering_accuracy
from .plugins import config_entry, import_plugins, require_plugins
from .registry import get_model_class
from .run import CONFIG, SUMMARY, build_model, check_run_dir, load, prepare_run_dir, read_json, save_model, write_arrays, write_json
from .train import BestCheckpoint, MetricsLog, ProgressBar, SampleGrid, TrainConfig

DATA_OPTIONS = ("spec", "data_dir", "labels", "binarize", "max_per_class")


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide a run's numbers (recorded in ``summary.json``)."""
    import arviz
    import pyro
    import sklearn

    from . import __version__

    return {"python": platform.python_version(), "ppmodels": __version__, "torch": torch.__version__, "pyro": pyro.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "arviz": arviz.__version__}


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def open_data(spec: str, data_dir: str | None = None, download: bool = False, labels: int | None = None, binarize: str = "none",
              max_per_class: int | None = None, seed: int = 0) -> TrainData:
    """Load a dataset and hide all but ``labels`` class-balanced training labels (``None`` keeps them all)."""
    dataset = load_dataset(spec, data_dir=data_dir, download=download, binarize=binarize, max_per_class=max_per_class, seed=seed)
    return prepare_data(dataset, labels, seed=seed)


def open_run_dataset(run_config: dict, data_dir: str | None = None) -> Dataset:
    """The data a run trained on, opened as its ``config.json`` records it: spec, data folder (``data_dir`` first),
    binarization, per-class cap and seed."""
    saved = run_config.get("data") or {}
    return load_dataset(saved.get("spec") or "digits", data_dir=data_dir or saved.get("data_dir"), binarize=saved.get("binarize") or "none",
                        max_per_class=saved.get("max_per_class"), seed=run_config.get("seed") or 0)


def train(model_name: str, data: str = "digits", out: str | Path = "runs/latest", *, data_dir: str | None = None,
          download: bool = False, labels: int | None = None, binarize: str = "none", max_per_class: int | None = None,
          train_config: TrainConfig | None = None, model_options: dict[str, Any] | None = None, overwrite: bool = False,
          resume: bool = False, progress: bool = True, sample_every: int = 10, plugins: list[str] | None = None):
    """Train a registered model on a data spec and write a run folder; returns ``(model, summary)``.

    With ``resume=True`` everything (model, data, training options) is read back from ``out/config.json``
    and training continues from ``out/checkpoints/last.pt``. ``plugins`` (``.py`` files or module names) are
    imported first so that user models they register can be named (see :mod:`ppmodels.plugins`).
    """
    import_plugins(plugins)
    out = check_run_dir(out, overwrite=overwrite, resume=resume)
    if resume:
        saved = read_json(out / CONFIG)
        asked = model_name
        require_plugins(saved.get("plugins"), saved.get("model"))
        model_name, (data, data_dir, labels, binarize, max_per_class), train_config = saved_options(saved, out / CONFIG)
        if asked != model_name:
            raise RunError(f"{out} is a run of model {model_name!r}, not {asked!r}; resume it as `ppmodels train {model_name} --out {out} --resume`")
    train_config = train_config or TrainConfig()
    train_config.validate()
    cls = get_model_class(model_name)
    bundle = open_data(data, data_dir, download, labels, binarize, max_per_class, train_config.seed)
    pyro.set_rng_seed(train_config.seed)  # the initial weights follow the seed, not whatever ran before in this process
    model = build_model(saved) if resume else cls(cls.config_from_data(bundle.dataset, **(model_options or {})))
    model.check_data(bundle)
    out = prepare_run_dir(out, overwrite=overwrite, resume=resume)  # only now: a request that fails leaves no folder behind
    if not resume:
        write_json(out / CONFIG, {
            "model": model.name, "model_config": dataclasses.asdict(model.config), "train": dataclasses.asdict(train_config),
            "data": dict(zip(DATA_OPTIONS, (data, data_dir, labels, binarize, max_per_class))), "seed": train_config.seed,
            **config_entry(cls),
        })
    callbacks = [ProgressBar(disable=not progress), MetricsLog(out), BestCheckpoint(out)]
    if sample_every and bundle.dataset.is_image:
        callbacks.append(SampleGrid(out, every=sample_every, seed=train_config.seed))
    start = time.perf_counter()
    model.fit(bundle, train_config, callbacks=callbacks, run_dir=out, resume=resume)
    save_model(model, out)
    summary = summarize(model, bundle, wall_time=time.perf_counter() - start, seed=train_config.seed)
    write_json(out / SUMMARY, summary)
    return model, summary


def saved_options(saved: dict, source: Path) -> tuple[str, tuple, TrainConfig]:
    """The model name, data options and training config a run folder's ``config.json`` recorded, for ``--resume``."""
    try:
        cfg = saved["data"]
        return saved["model"], tuple(cfg[k] for k in DATA_OPTIONS), TrainConfig(**saved["train"])
    except (KeyError, TypeError) as exc:
        raise RunError(f"{source} lacks or garbles {exc} that --resume needs; the run folder is damaged, start again with --overwrite") from None


def summarize(model, data: TrainData, wall_time: float, seed: int | None = None) -> dict[str, Any]:
    """Final ELBOs per datum on each split, epochs, time, memory, test accuracy for classifiers, the seed and versions."""
    state = getattr(model, "train_state_", None)
    summary: dict[str, Any] = {"model": model.name, "data": data.dataset.spec, "num_labels": data.train.num_labeled}
    for name in ("train", "valid", "test"):
        split = getattr(data, name)
        if split is not None:
            summary[f"{name}_elbo"] = model.elbo_per_datum(split)
    if state is not None:
        kept = {"valid_accuracy": f"the best validation accuracy ({state.best_valid_accuracy:.4f})",
                "valid_elbo": f"the best validation ELBO ({state.best_valid_elbo:.4f})",
                "train_elbo": f"the best training ELBO ({state.best_valid_elbo:.4f}; no validation split)"}[state.selected_by]
        summary.update(epochs=state.epoch, best_epoch=state.best_epoch, selected_by=state.selected_by,
                       kept=f"weights of epoch {state.best_epoch}, {kept}", stopped_early=state.stopped_early,
                       skipped_batches=state.skipped_batches, train_time_s=round(state.elapsed, 2))
    if hasattr(model, "predict") and data.test is not None and data.test.y is not None:
        report = classification_report(data.test.y.numpy(), np.asarray(model.predict(data.test.x)), data.num_classes)
        summary.update({f"test_{key}": value for key, value in report.items()})
    if hasattr(model, "active_dims"):  # M1+M2: the z1 dimensions its M2 models
        summary.update(active_dims=len(model.active_dims), latent_dims=int(model.m2.feature_mask.numel()))
    if hasattr(model, "cluster") and data.test is not None and data.test.y is not None:
        summary["test_cluster_accuracy"] = clustering_accuracy(data.test.y.numpy(), model.cluster(data.test.x))
    summary.update(wall_time_s=round(wall_time, 2), peak_memory_mb=round(peak_memory_mb(), 1), seed=seed,
                   versions=versions())
    return summary


def select_split(dataset: Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` and ``y`` of one split, or of the whole dataset for ``split='all'``."""
    if split == "all":
        return torch.from_numpy(dataset.x), None if dataset.y is None else torch.from_numpy(dataset.y)
    part = dataset.split(split)
    return part.x, part.y


def encode(run: str | Path, data: str, out: str | Path, *, data_dir: str | None = None, split: str = "all") -> Path:
    """Write ``z_loc``, ``z_scale`` (and ``y`` when known) of q(z|x) for the chosen data to an ``.npz`` file."""
    out = Path(out)
    if out.suffix != ".npz":
        raise ConfigError(f"--out {out} must end in .npz")
    model = load(run)
    if not hasattr(model, "encode"):
        raise ConfigError(f"model {model.name!r} has no encoder; encode works for models with a latent z")
    x, y = select_split(load_dataset(data, data_dir=data_dir), split)
    z_loc, z_scale = model.encode(x)
    arrays = {"z_loc": z_loc, "z_scale": z_scale}
    if y is not None:
        arrays["y"] = y.numpy()
    write_arrays(out, arrays)
    return out


def latent_decoder(model):
    """The model whose decoder maps ``model``'s data back to observations when ``model`` was fitted on
    ``latents:RUN`` (its config names ``decoder_run``), else ``None``."""
    run = getattr(model.config, "decoder_run", "")
    if not run:
        return None
    decoder = load(run)
    if not hasattr(decoder, "decode"):
        raise RunError(f"run {run} (the decoder of these latents) holds model {decoder.name!r}, which cannot decode")
    return decoder


def sample(run: str | Path, num: int, out: str | Path, *, seed: int = 0, zoom: int = 1) -> Path:
    """Write ``num`` prior samples (decoded means) of a trained model to a ``.png`` grid (image data) or ``.npy``.

    For a density fitted on ``latents:RUN`` (e.g. ``gmm``) the draws are latent codes and are decoded with RUN's
    decoder. The other modes of ``ppmodels sample`` (posterior, class-conditional, analogies) are in
    :mod:`ppmodels.sampling`.
    """
    from .sampling import sample_prior

    return sample_prior(run, num, out, seed=seed, zoom=zoom)
