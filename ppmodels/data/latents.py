"""The data source ``latents:RUN``: the posterior means of a trained run's own training data.

``ppmodels train gmm --data latents:runs/vae`` fits a density to the codes ``E[z | x]`` of the data ``runs/vae`` was
trained on (same spec and options, same splits, same labels). The dataset remembers the run in
``metadata["decoder_run"]``, so a model fitted on it can decode its samples with that run's decoder.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .dataset import Dataset
from .sources import register_source


def run_training_dataset(run: str | Path) -> Dataset:
    """The dataset a run was trained on, opened again from the data spec and options in its ``config.json``."""
    from ..run import CONFIG, read_json
    from . import load_dataset

    saved = read_json(Path(run) / CONFIG).get("data")
    if not saved:
        raise DataError(f"{Path(run) / CONFIG} records no training data; use a run folder written by `ppmodels train`")
    return load_dataset(saved["spec"], data_dir=saved.get("data_dir"), binarize=saved.get("binarize") or "none",
                        max_per_class=saved.get("max_per_class"))


@register_source("latents")
def _latents(path: str, options: dict, **_) -> Dataset:
    """Posterior means of q(z | x) for every datum of the run's training data, with its splits and labels."""
    from ..run import load

    if not path:
        raise DataError("the spec latents:RUN names no run folder; write it as latents:runs/vae")
    model = load(path)
    if not hasattr(model, "encode"):
        raise DataError(f"run {path} holds model {model.name!r}, which has no encoder; latents:RUN needs a model with q(z|x)")
    source = run_training_dataset(path)
    z_loc, _ = model.encode(source.x)
    return Dataset(f"latents of {Path(path).name}", z_loc, source.y, "gaussian", dict(source.splits),
                   class_names=source.class_names, metadata={"decoder_run": str(Path(path).resolve())})
