"""``ppmodels predict``: a classifier run applied to every pixel of an image cube, written back as a map.

The output ``.nc`` is an xarray Dataset over the cube's ``y``/``x`` coordinates: ``class_map`` (the predicted class,
as the ground-truth value it stands for), ``probability`` (q(y|x) per ``class``), ``z`` (the posterior mean of the
model's latent per ``latent`` dim: E[z|x], or E[z|x, predicted y] for M2) and ``labels`` (the ground truth, when the
cube has one). The cube is standardised with the transform recorded by the training run, not its own statistics.
The cube's coordinates keep their attributes (units, long names), the band coordinate the model read is kept too,
and the classes are named (``class_name`` along ``class``; CF ``flag_values``/``flag_meanings`` on ``class_map``
and ``labels``) when the ground truth named them. A PNG of the map beside the ground truth is written next to it.
Without ``data`` the run's own training scene is mapped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import Dataset, class_numbers, to_xarray, write_netcdf
from ..errors import ConfigError, DataError
from ..models import CanClassify, CanEncode, CanStyle
from ..plots import save_class_maps
from ..runs import check_output, load, located_data, open_for_run, output_lock, record_output, run_config


def predict(run: str | Path, data: str | None, out: str | Path, *, data_dir: str | None = None, download: bool = False,
            png: bool = True, overwrite: bool = False) -> dict[str, Path]:
    """Write the class map, q(y|x) and z of every pixel of the cube ``data`` (``None``: the scene the run trained on,
    found as ``evaluate`` finds it) to ``out`` (``.nc``), and a PNG of the map beside the ground truth (``out`` with
    ``.png``) unless ``png=False``. Returns the paths written. An existing file ppmodels did not write is replaced
    only with ``overwrite`` (:mod:`ppmodels.runs.outputs`)."""
    out = check_output(out, (".nc",), overwrite=overwrite, command="predict", run=run)
    if png:  # not named on the command line: --overwrite does not reach it, only predict's own PNG of this run is replaced
        check_output(out.with_suffix(".png"), (".png",), command="predict", run=run, unnamed="--no-png")
    model = load(run)
    if not isinstance(model, CanClassify):
        raise ConfigError(f"model {model.name!r} does not classify; predict needs a run of m2, m1m2 or m1 (with labels)")
    if data is None:
        data, data_dir = run_scene(run, data_dir)
    dataset = open_for_run(run, data, data_dir, cube=True, download=download)  # standardised as the run's scene was
    probs = model.predict_proba(dataset.x)
    values = class_values(dataset, probs.shape[1])
    variables = {"class_map": (values[probs.argmax(1)], ()), "probability": (probs.astype(np.float32), ("class",))}
    z = latent_means(model, dataset.x)
    if z is not None:
        variables["z"] = (z.astype(np.float32), ("latent",))
    names = dataset.class_names if dataset.class_names and len(dataset.class_names) == len(values) else [str(v) for v in values]
    ds = to_xarray(dataset, variables, coords={"class": values, "class_name": ("class", np.asarray(names, dtype=str))})
    ds["class_map"].attrs["description"] = "argmax q(y|x), as the ground-truth value of the class"
    for name in ("class_map", "labels"):  # CF names of the codes, so that viewers label the map's classes
        if name in ds:
            ds[name].attrs.update(flag_values=values, flag_meanings=" ".join(n.replace(" ", "_") for n in names))
    with output_lock(out):
        write_netcdf(ds, out)
        written = {"map": record_output(out, "predict", run)}
        if png:
            written["png"] = record_output(save_class_maps(map_panels(ds, values), out.with_suffix(".png"), num_classes=len(values)), "predict", run)
    return written


def run_scene(run: str | Path, data_dir: str | None) -> tuple[str, str | None]:
    """The spec of the scene ``run`` trained on, as found now (where it was, or beside the moved run folder, its
    checksum checked), and the ``--data-dir`` to look in (``data_dir``, else the run's)."""
    saved = run_config(run).get("data") or {}
    if not saved.get("spec"):
        raise DataError(f"run {run} records no training data; name the scene with --data")
    spec, saved_dir, _ = located_data(saved, Path(run))
    return spec, data_dir or saved_dir


def class_values(dataset: Dataset, num_classes: int) -> np.ndarray:
    """The ground-truth value each class number stands for (the class numbers themselves without a record)."""
    classes = dataset.metadata["cube"].get("classes")
    if classes is not None and len(classes) != num_classes:
        raise ConfigError(f"the cube's ground truth has {len(classes)} classes but the model predicts {num_classes}; give a scene of the same classes")
    return np.asarray(classes if classes is not None else np.arange(num_classes), dtype=np.int64)


def latent_means(model, x) -> np.ndarray | None:
    """E[z | x] (E[z | x, argmax q(y|x)] for M2); ``None`` for a model without a latent z."""
    if isinstance(model, CanEncode):
        return np.asarray(model.encode(x)[0])
    if isinstance(model, CanStyle):
        return model.style_means(x)
    return None


def map_panels(ds, values: np.ndarray) -> dict[str, np.ndarray]:
    """The predicted map and the ground truth as class numbers (-1: background) for :func:`save_class_maps`."""
    names = {"predicted": "class_map", "ground truth": "labels"}
    return {title: class_numbers(ds[name].values, values) for title, name in names.items() if name in ds}
