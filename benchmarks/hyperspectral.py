"""A synthetic hyperspectral scene with the class structure of Indian Pines, and M2 against SVC on it.

The scene: ``height x width`` pixels, ``bands`` bands from 400 to 2500 nm, 16 classes whose pixel counts are those of
Indian Pines scaled to the scene (20 to 2455 pixels at 145 x 145), 51% background. Fields are contiguous patches
(groups of Voronoi cells). Each class has a smooth mean spectrum; classes come in pairs of similar spectra (like corn
no-till and corn min-till); every pixel is its class spectrum times an illumination factor (the main source of
variation, as topography and shade give), plus smooth within-class variation and sensor noise. Background pixels are
unsurveyed fields of the same crops, 40% of the fields mixtures of two of them.

Run (a few minutes a scene, seed and label count on 2 cores)::

    python -m benchmarks.hyperspectral --out /tmp/hyperspectral --scenes voronoi,parcel --seeds 0,1,2 --labels-per-class 5,10

Calls of one setting on other scenes, seeds or label counts (say, one a core) are joined into one results file with
``--merge OUT JSON...``, and ``--table JSON...`` prints the docs' table of results files.

For each scene generator (this file's ``voronoi`` scene and the independent ``parcel`` scene of
:mod:`benchmarks.parcel_scene`), seed and label count it writes the scene (``scene.nc``), trains M2 on the scene read
through the front end (``--front-end``, default :data:`FRONT_END`) with that many labels a class
(``ppmodels train m2 --labels``), its epoch count chosen as the recipe does (``--select-by``, default
:data:`SELECT_BY`: cross-validated over the labels, then a refit on all of them; docs/hyperspectral.md), maps the
scene (``ppmodels predict``), fits the baselines on the same labeled pixels in the same input and, beside them, in the raw pixels, in plain 5 x 5 averages and in brightness-normalised
5 x 5 averages of every band, and writes
(``results.json``) the balanced accuracy of each on every labeled pixel outside the budget, each class's predicted
share against its true share, and the mean and spread over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (not with -m): the parcel scene's module is imported as benchmarks.parcel_scene
    sys.path.insert(0, str(ROOT))

#: pixels per class of Indian Pines (classes 1..16), 10249 labeled of 21025
INDIAN_PINES_COUNTS = (46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265, 386, 93)
BACKGROUND = 0.51


def class_counts(num_pixels: int, background: float = BACKGROUND, minimum: int = 3) -> np.ndarray:
    """Indian Pines' class counts scaled to ``num_pixels * (1 - background)`` labeled pixels (at least ``minimum`` each)."""
    counts = np.asarray(INDIAN_PINES_COUNTS, dtype=np.float64)
    scaled = np.maximum(minimum, np.round(counts / counts.sum() * num_pixels * (1 - background))).astype(int)
    if num_pixels == 145 * 145 and background == BACKGROUND:
        return np.asarray(INDIAN_PINES_COUNTS)
    return scaled


def voronoi(height: int, width: int, cells: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The Voronoi cell of each pixel (row-major) around ``cells`` random seeds, and its squared distance to the seed."""
    yy, xx = np.mgrid[:height, :width]
    seeds = rng.uniform([0, 0], [height, width], size=(cells, 2))
    d2 = ((np.stack([yy.ravel(), xx.ravel()], 1)[:, None, :] - seeds[None]) ** 2).sum(-1)
    cell = d2.argmin(1)
    return cell, d2[np.arange(len(cell)), cell]


def label_map(height: int, width: int, counts: np.ndarray, rng: np.random.Generator, cells: int = 150) -> np.ndarray:
    """A ground-truth map (0: background, 1..K) with exactly ``counts[k-1]`` pixels of class k, in spatial patches:
    pixels ordered by Voronoi cell (cells in random order) and distance to its seed, then cut into runs."""
    cell, distance = voronoi(height, width, cells, rng)
    rank = rng.permutation(cells)[cell]
    order = np.lexsort((distance, rank))
    # runs of each class in a random order of classes and background chunks, so fields sit among background
    chunks = np.array_split(np.zeros(height * width - counts.sum(), dtype=int), len(counts))
    runs = [np.full(n, k + 1) for k, n in enumerate(counts)]
    pieces = [p for pair in zip(runs, chunks) for p in pair]
    sequence = np.concatenate([pieces[i] for i in rng.permutation(len(pieces))])
    labels = np.empty(height * width, dtype=np.int64)
    labels[order] = sequence
    return labels.reshape(height, width)


def class_spectra(num_classes: int, wavelengths: np.ndarray, rng: np.random.Generator, similarity: float = 0.9) -> np.ndarray:
    """Smooth reflectance spectra ``(K, bands)`` of vegetation-like shape, classes 2i and 2i+1 close to each other."""
    w = (wavelengths - wavelengths.min()) / np.ptp(wavelengths)
    base = 0.05 + 0.35 / (1 + np.exp(-(w - 0.15) * 40)) * np.exp(-((w - 0.35) ** 2) / 0.2)  # a red edge and a NIR plateau

    def bumps(n: int) -> np.ndarray:
        centers, widths, heights = rng.uniform(0, 1, n), rng.uniform(0.03, 0.15, n), rng.normal(0, 0.06, n)
        return (heights[:, None] * np.exp(-((w[None] - centers[:, None]) ** 2) / (2 * widths[:, None] ** 2))).sum(0)

    spectra = []
    for k in range(0, num_classes, 2):
        shared = base + bumps(6)
        for _ in range(min(2, num_classes - k)):
            spectra.append(shared + (1 - similarity) * bumps(6) * 4)
    return np.clip(np.stack(spectra), 0.01, None)


def synthetic_scene(height: int = 145, width: int = 145, bands: int = 200, seed: int = 0, counts: np.ndarray | None = None,
                    noise: float = 0.01, illumination: float = 0.25, variation: float = 0.02) -> dict:
    """The scene as arrays: ``cube`` ``(height, width, bands)`` reflectance, ``labels`` ``(height, width)`` (0 background,
    1..16) and ``wavelength`` ``(bands,)`` in nm."""
    rng = np.random.default_rng(seed)
    counts = class_counts(height * width) if counts is None else np.asarray(counts)
    labels = label_map(height, width, counts, rng)
    wavelength = np.linspace(400, 2500, bands)
    spectra = class_spectra(len(counts), wavelength, rng)
    k = len(counts)
    n = height * width
    flat = labels.ravel()
    # background: unsurveyed fields of the same crops, some of them mixtures of two (fields as Voronoi cells)
    cells = 60
    cell, _ = voronoi(height, width, cells, rng)
    crop, partner, share = rng.integers(0, k, cells), rng.integers(0, k, cells), np.where(rng.random(cells) < 0.4, rng.uniform(0.3, 0.7, cells), 1.0)
    source = np.where(flat > 0, flat - 1, crop[cell])
    weight = np.where(flat > 0, 1.0, share[cell])[:, None]
    mean = weight * spectra[source] + (1 - weight) * spectra[partner[cell]]
    smooth = np.stack([np.sin(np.pi * (j + 1) * (wavelength - 400) / 2100) for j in range(4)])  # within-class shapes
    style = rng.normal(0, variation, (n, len(smooth))) @ smooth
    light = np.exp(rng.normal(0, illumination, (n, 1)))
    cube = light * (mean + style) + rng.normal(0, noise, (n, bands))
    return {"cube": cube.reshape(height, width, bands).astype(np.float32), "labels": labels, "wavelength": wavelength}


def write_netcdf(path: str | Path, scene: dict, bands_first: bool = False) -> Path:
    """The scene as netCDF: ``reflectance`` over (y, x, wavelength) or (wavelength, y, x), ``gt`` over (y, x)."""
    import xarray as xr

    h, w, _ = scene["cube"].shape
    cube = xr.DataArray(scene["cube"], dims=("y", "x", "wavelength"),
                        coords={"y": np.arange(h) * 20.0, "x": np.arange(w) * 20.0, "wavelength": scene["wavelength"]})
    if bands_first:
        cube = cube.transpose("wavelength", "y", "x")
    ds = xr.Dataset({"reflectance": cube, "gt": (("y", "x"), scene["labels"].astype(np.uint8))})
    ds.to_netcdf(path, engine="h5netcdf")
    return Path(path)


def write_mat(path: str | Path, scene: dict, gt_path: str | Path | None = None, v73: bool = False) -> Path:
    """The scene as MATLAB files like the public ones: ``cube`` (rows, columns, bands) and ``gt`` (in ``gt_path`` if
    given, else the same file); ``v73``: the HDF5-based version 7.3, whose arrays h5py stores with axes reversed."""
    import scipy.io

    files = {path: {"cube": scene["cube"]}}
    if gt_path is None:
        files[path]["gt"] = scene["labels"].astype(np.uint8)
    else:
        files[gt_path] = {"gt": scene["labels"].astype(np.uint8)}
    for target, arrays in files.items():
        if v73:
            import h5py

            with h5py.File(target, "w", userblock_size=512) as f:
                for name, array in arrays.items():
                    f[name] = np.asarray(array).T  # MATLAB writes column-major: h5py sees the axes reversed
            with open(target, "r+b") as f:
                f.write(b"MATLAB 7.3 MAT-file, written by benchmarks/hyperspectral.py".ljust(128))
        else:
            scipy.io.savemat(target, arrays)
    return Path(path)


def share_ratios(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Each class's share of the predictions over its share of the truth (1: predicted as often as it occurs)."""
    true = np.bincount(y_true, minlength=num_classes) / len(y_true)
    with np.errstate(invalid="ignore", divide="ignore"):  # a class absent from y_true: NaN (or inf if predicted)
        return np.bincount(y_pred, minlength=num_classes) / len(y_pred) / true


def _row(y_true: np.ndarray, y_pred: np.ndarray, k: int, **info) -> dict:
    from ppmodels.metrics import balanced_accuracy

    ratios = share_ratios(y_true, y_pred, k)
    return {"balanced_accuracy": balanced_accuracy(y_true, y_pred), "share_ratio": ratios.round(3).tolist(),
            "max_share_ratio": float(np.nanmax(ratios)), **info}


def evaluated_pixels(data) -> np.ndarray:
    """The rows a run of this benchmark is scored on (``data``: :func:`ppmodels.runs.open_run_data`'s): every labeled
    pixel of the scene outside the run's labels (its whole budget, those it held out for selection too)."""
    labeled = data.labeled.labeled.numpy()
    return np.setdiff1d(np.flatnonzero(data.dataset.y >= 0), data.dataset.splits["train"][labeled])


class PixelCurve:
    """Trainer callback (``--curve``): after every epoch, M2's balanced accuracy and largest predicted/true class share
    on the pixels the benchmark scores (:func:`evaluated_pixels`), with the epoch's validation ELBO. The curve of a
    run that keeps its last epoch (``--select-by last_epoch``) is what any rule choosing among its epochs would keep
    (``benchmarks/stopping_rules.py``)."""

    def __init__(self):
        self.points, self.held, self.y = [], None, None

    def on_epoch_end(self, trainer, record: dict) -> None:
        dataset = trainer.data.dataset
        if self.held is None:  # the scored pixels and their labels do not change between epochs
            self.held = evaluated_pixels(trainer.data)
            self.y = dataset.y[self.held]
        row = _row(self.y, np.asarray(trainer.model.predict(dataset.x[self.held])), dataset.num_classes)
        self.points.append({"epoch": record["epoch"], "balanced_accuracy": round(row["balanced_accuracy"], 4),
                            "max_share_ratio": round(row["max_share_ratio"], 2), "valid_elbo": record.get("valid_elbo")})


def compare(run: Path, other_inputs: dict[str, str] | None = None, baselines: tuple[str, ...] | None = None,
            other_baselines: tuple[str, ...] = ("svc", "svc_tuned", "logistic_tuned"), max_spread: int | None = None) -> dict:
    """M2 of ``run`` against the baselines of :mod:`ppmodels.analysis.baselines` (an untuned SVC; an SVC, logistic
    regression and label spreading tuned by stratified cross-validation) fitted on the run's labeled pixels (its whole
    budget, those it held out for selection too), scored on every other labeled pixel of the scene.

    The baselines read what M2 read (the run's data spec, front end included); ``other_inputs`` (``{name: spec}``,
    the same scene read another way, e.g. raw pixels or ``?patch=5``) adds ``other_baselines`` fitted on the same
    pixels' labels in that input, as rows ``"NAME:INPUT"``. ``max_spread``: label spreading's cap on graph nodes
    (:data:`ppmodels.analysis.baselines.MAX_SPREAD` when ``None``)."""
    from ppmodels.analysis.baselines import BASELINES, MAX_SPREAD, fit_baselines, predict_rows
    import torch

    from ppmodels.data import Split, load_dataset
    from ppmodels.runs import load, open_run_data

    data = open_run_data(run)
    dataset, budget = data.dataset, data.labeled
    labeled = budget.labeled.numpy()
    train_rows = dataset.splits["train"]
    held = evaluated_pixels(data)
    x_e, y_e, k = dataset.x[held], dataset.y[held], dataset.num_classes
    result = {"labeled_pixels": int(labeled.sum()), "evaluated_pixels": int(len(held)),
              "m2": _row(y_e, load(run).predict(x_e), k)}
    spread = MAX_SPREAD if max_spread is None else max_spread
    for name, (estimator, info) in fit_baselines(budget, baselines or BASELINES, max_spread=spread, seed=0).items():
        result[name] = _row(y_e, predict_rows(estimator, x_e), k, **info)  # label spreading: 0/0 rows get class 0
    for input_name, spec in (other_inputs or {}).items():
        other = load_dataset(spec)
        if not np.array_equal(other.splits["train"], train_rows) or not np.array_equal(other.y, dataset.y):
            raise ValueError(f"{spec!r} is not the scene of {run}: its pixels or labels differ")
        same_labels = Split("train", torch.as_tensor(np.asarray(other.x[train_rows])), budget.y)
        other_e = other.x[held]
        for name, (estimator, info) in fit_baselines(same_labels, other_baselines, max_spread=spread, seed=0).items():
            result[f"{name}:{input_name}"] = _row(y_e, predict_rows(estimator, other_e), k, **info)
    return result


#: the scene generators: this file's, and the independent one of :mod:`benchmarks.parcel_scene`
SCENES = ("voronoi", "parcel")


def make_scene(name: str, size: int, bands: int, seed: int, illumination: float = 0.25) -> dict:
    """The arrays of scene generator ``name`` (:data:`SCENES`)."""
    if name == "parcel":
        from benchmarks.parcel_scene import parcel_scene  # it imports this module's class counts

        return parcel_scene(size, size, bands, seed=seed)
    return synthetic_scene(size, size, bands, seed=seed, illumination=illumination)


#: what M2 reads of a scene by default (docs/hyperspectral.md): brightness removed, 5 x 5 spatial mean, the 8
#: leading principal axes
FRONT_END = "normalize=brightness&patch=5&components=8"
#: the inputs the baselines also get beside M2's (one that is M2's own is skipped): the raw pixels, the plain 5 x 5
#: average, and brightness + 5 x 5 with every band
OTHER_INPUTS = {"raw": "", "patch5": "patch=5", "bright5": "normalize=brightness&patch=5"}
M2_OPTIONS = {"z_dim": 8, "hidden": [128]}
#: how the recipe chooses M2's epoch count: by 5-fold cross-validation over the labels (the validation ELBO keeps
#: rising while the classes drift, so it keeps late epochs: docs/hyperspectral.md, "Longer runs")
SELECT_BY = "cv"


def _spec(path: Path, options: str) -> str:
    return f"cube:{path}" + (f"?{options}" if options else "")


def run_cell(out: Path, scene_name: str, seed: int, labels_per_class: int, args) -> dict:
    """One scene, seed and label count: M2 trained and mapped, and every baseline row, as a dict."""
    from ppmodels.commands.predict import predict
    from ppmodels.commands.train import train
    from ppmodels.infer import TrainConfig

    folder = out / f"{scene_name}_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    scene = folder / "scene.nc"
    if not scene.exists():
        write_netcdf(scene, make_scene(scene_name, args.size, args.bands, seed, args.illumination))
    rule = ("" if args.select_by == "valid_elbo" else f"_{args.select_by}") + (f"_average{args.average_epochs}" if args.average_epochs else "")
    reads = "_" + (args.front_end.replace("&", "_").replace("=", "") or "raw")  # runs of another input are not reused
    options = {**M2_OPTIONS, **args.m2_options}
    changed = "".join(f"_{key}{value}" for key, value in sorted(args.m2_options.items()))  # runs with other options are not reused
    run = folder / f"m2_{labels_per_class}per_class_{args.epochs}epochs{rule}{reads}{changed}"
    start = time.perf_counter()
    config = TrainConfig(epochs=args.epochs, batch_size=200, select_by=args.select_by, cv_folds=args.cv_folds, patience=None, seed=seed,
                         average_epochs=args.average_epochs)
    curve = PixelCurve() if args.curve else None
    reused = (run / "summary.json").is_file() and not args.retrain and not args.curve  # a finished run of an interrupted benchmark
    if not reused:
        train("m2", _spec(scene, args.front_end), run, labels=16 * labels_per_class, train_config=config, model_options=options,
              overwrite=True, progress=False, callbacks=[curve] if curve else None)
    train_s = json.loads((run / "summary.json").read_text()).get("train_time_s") if reused else time.perf_counter() - start
    if args.map:
        predict(run, _spec(scene, args.front_end), run / "map.nc", overwrite=True)
    others = {name: _spec(scene, options) for name, options in OTHER_INPUTS.items() if options != args.front_end}
    kept = {key: json.loads((run / "summary.json").read_text()).get(key) for key in ("selected_by", "best_epoch", "selection", "cv")}
    return {"scene": scene_name, "seed": seed, "labels_per_class": labels_per_class, "train_time_s": round(train_s, 1) if train_s is not None else None, "reused_run": reused,
            "m2_selection": {**kept, "select_by": args.select_by, "average_epochs": args.average_epochs},
            **({"m2_curve": curve.points} if curve else {}), **compare(run, others, max_spread=args.max_spread)}


def summarise(cells: list[dict]) -> dict:
    """``{scene: {labels per class: {row: {mean, sd, n, values}}}}`` of balanced accuracy over seeds."""
    summary: dict = {}
    for cell in cells:
        rows = summary.setdefault(cell["scene"], {}).setdefault(str(cell["labels_per_class"]), {})
        for name, entry in cell.items():
            if isinstance(entry, dict) and "balanced_accuracy" in entry:
                rows.setdefault(name, []).append(entry["balanced_accuracy"])
    return {scene: {lpc: {name: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v),
                                 "values": [round(a, 4) for a in v]} for name, v in rows.items()}
                    for lpc, rows in by_lpc.items()} for scene, by_lpc in summary.items()}


#: the rows of the docs' table, in order: (row key, label)
TABLE_ROWS = (("m2", "**M2** ({input})"), ("svc_tuned", "SVC tuned ({input})"),
              ("logistic_tuned", "logistic tuned ({input})"), ("label_spreading_tuned", "label spreading tuned ({input})"),
              ("svc_tuned:bright5", "SVC tuned (brightness + 5x5, every band)"),
              ("logistic_tuned:bright5", "logistic tuned (brightness + 5x5, every band)"),
              ("svc_tuned:patch5", "SVC tuned (5x5 average)"), ("logistic_tuned:patch5", "logistic tuned (5x5 average)"),
              ("svc_tuned:raw", "SVC tuned (raw pixels)"), ("logistic_tuned:raw", "logistic tuned (raw pixels)"), ("svc:raw", "SVC C=1 (raw pixels)"))


def input_name(front_end: str) -> str:
    """How the table names what M2 read."""
    names = {FRONT_END: "brightness + 5x5 + 8 axes", OTHER_INPUTS["bright5"]: "brightness + 5x5", "": "raw pixels"}
    return names.get(front_end, front_end.replace("&", ", "))


#: how the table names M2's stopping rule (``select_by``)
RULE_NAMES = {"cv": "cross-validated epochs", "valid_elbo": "validation ELBO", "last_epoch": "last epoch"}


def markdown_table(summary: dict, front_end: str = FRONT_END, select_by: str | None = None) -> str:
    """The summary as a markdown table: one row per method, one column per scene and label count (mean +- sd (n));
    ``front_end``: what M2 and the first baselines read; ``select_by``, if given, is named in M2's row."""
    columns = [(scene, lpc) for scene, by_lpc in summary.items() for lpc in by_lpc]
    lines = ["| balanced accuracy | " + " | ".join(f"{scene}, {lpc} labels a class" for scene, lpc in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for key, label in TABLE_ROWS:
        cells = []
        for scene, lpc in columns:
            r = summary[scene][lpc].get(key)
            cells.append("" if r is None else f"{r['mean']:.3f}" + (f" +- {r['sd']:.3f}" if r["sd"] is not None else "") + f" ({r['n']})")
        if any(cells):  # a row no results file has (another input's baselines) is left out
            what = input_name(front_end) if key != "m2" or select_by is None else f"{input_name(front_end)}, {RULE_NAMES.get(select_by, select_by)}"
            lines.append(f"| {label.format(input=what)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: the settings every merged results file must share (cells of different settings are not one experiment)
MERGE_MUST_AGREE = ("size", "bands", "epochs", "select_by", "cv_folds", "average_epochs", "m2_options", "front_end", "illumination", "max_spread")


def merge_results(results: list[dict]) -> dict:
    """Results files of separate calls (other scenes, seeds or label counts of one setting) as one: the cells
    concatenated in (scene, labels a class, seed) order, the summary recomputed, the first call's config with the union
    of scenes, seeds and label counts, and ``merged_from``: what each call ran. Raises ``ValueError`` when the calls'
    settings (:data:`MERGE_MUST_AGREE`) differ or two calls ran the same cell."""
    if not results:
        raise ValueError("nothing to merge: give at least one results file")
    configs = [r["config"] for r in results]
    for key in MERGE_MUST_AGREE:
        values = [c.get(key) for c in configs]
        if any(v != values[0] for v in values[1:]):
            raise ValueError(f"the results files differ in {key} ({', '.join(sorted({json.dumps(v) for v in values}))}); merge only calls of one setting")
    cells = sorted((cell for r in results for cell in r["cells"]), key=lambda c: (c["scene"], c["labels_per_class"], c["seed"]))
    repeated = sorted(key for key, n in Counter((c["scene"], c["seed"], c["labels_per_class"]) for c in cells).items() if n > 1)
    if repeated:
        scene, seed, lpc = repeated[0]
        raise ValueError(f"two results files both have {scene} seed {seed} at {lpc} labels a class; leave one of them out")
    config = {key: value for key, value in configs[0].items() if key not in ("out", "json", "table", "merge")}
    config.update(scenes=",".join(dict.fromkeys(c["scene"] for c in cells)), seeds=",".join(str(s) for s in sorted({c["seed"] for c in cells})),
                  labels_per_class=",".join(str(n) for n in sorted({c["labels_per_class"] for c in cells})))
    merged_from = [entry for r in results for entry in r.get("merged_from")
                   or [{key: r["config"].get(key) for key in ("scenes", "seeds", "labels_per_class", "epochs", "select_by", "m2_options")}]]
    return {"config": config, "merged_from": merged_from, "cells": cells, "summary": summarise(cells)}


def _read_results(paths: list[Path], parser: argparse.ArgumentParser) -> list[dict]:
    """The results files at ``paths``; a missing or foreign file stops the call with one line."""
    from benchmarks.results_files import read_results

    try:
        return [read_results(path, ("config", "cells")) for path in paths]
    except ValueError as error:
        parser.error(str(error))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/hyperspectral", help="folder for the scenes, the runs and results.json")
    p.add_argument("--scenes", default="voronoi", help="comma-separated scene generators: voronoi (this file's), parcel (benchmarks/parcel_scene.py)")
    p.add_argument("--size", type=int, default=145, help="scene height and width in pixels")
    p.add_argument("--bands", type=int, default=200)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--select-by", default=SELECT_BY, help="M2's TrainConfig.select_by (cv, the recipe's: the epoch count "
                   "cross-validated over the labels, then a refit on all of them, at least 2 labels a class; valid_elbo: the "
                   "previous recipe's; runs of a rule other than valid_elbo go to folders named ..._RULE)")
    p.add_argument("--cv-folds", type=int, help="--select-by cv: the number of folds (default: 5, at most the labels a class)")
    p.add_argument("--average-epochs", type=int, default=0, help="M2's TrainConfig.average_epochs: keep the average of the "
                   "weights at the ends of this many epochs (0: the last weights)")
    p.add_argument("--m2-options", help=f"M2 options as JSON over the recipe's {M2_OPTIONS}, e.g. '{{\"class_prior\": \"learned\"}}'")
    p.add_argument("--labels-per-class", default="10", help="comma-separated label counts per class")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (scene, labels and initialisation)")
    p.add_argument("--front-end", default=FRONT_END, help="cube options M2 and the first baselines read the scene with ('' for raw pixels)")
    p.add_argument("--illumination", type=float, default=0.25, help="voronoi scene: standard deviation of each pixel's log brightness factor")
    p.add_argument("--max-spread", type=int, default=8000, help="label spreading's graph: every labeled pixel and a seeded sample of the others, this many in all")
    p.add_argument("--curve", action="store_true", help="record M2's balanced accuracy on the scored pixels after every epoch "
                   "(the cell's m2_curve; trains again rather than reuse a finished run)")
    p.add_argument("--retrain", action="store_true", help="train again runs that a previous call finished (default: reuse them)")
    p.add_argument("--no-map", dest="map", action="store_false", help="skip writing map.nc / map.png")
    p.add_argument("--json", default=None, help="where to write the results (default: OUT/results.json)")
    p.add_argument("--table", nargs="+", metavar="JSON", help="print the markdown table of these results files (merged) and stop")
    p.add_argument("--merge", nargs="+", metavar=("OUT", "JSON"), help="write these results files (calls of one setting on "
                   "other scenes, seeds or label counts) as one results file OUT, the summary recomputed, and stop")
    return p


def merge_files(args, p: argparse.ArgumentParser) -> dict:
    """``--merge OUT JSON...``: :func:`merge_results` of the files, written to OUT."""
    if len(args.merge) < 2:
        p.error("--merge needs the file to write and at least one results file: --merge OUT JSON [JSON ...]")
    target, *sources = (Path(path) for path in args.merge)
    if target in sources:
        p.error(f"--merge would overwrite its input {target}; write the merged file elsewhere")
    try:
        merged = merge_results(_read_results(sources, p))
    except ValueError as error:
        p.error(f"--merge: {error}")
    target.write_text(json.dumps(merged, indent=1))
    print(f"wrote {target}: {len(merged['cells'])} cells from {len(sources)} files")
    return merged


def print_table(args, p: argparse.ArgumentParser) -> dict:
    """``--table JSON...``: the docs' markdown table of the files' cells."""
    results = _read_results([Path(path) for path in args.table], p)
    front_ends = {r["config"].get("front_end", FRONT_END) for r in results}
    if len(front_ends) > 1:
        p.error(f"the results files read the scenes differently ({', '.join(sorted(map(repr, front_ends)))}); tabulate each front end on its own")
    rules = {r["config"].get("select_by", "valid_elbo") for r in results}  # files from before the option chose by the ELBO
    if len(rules) > 1:
        p.error(f"the results files choose M2's epoch differently ({', '.join(sorted(rules))}); tabulate each rule on its own")
    cells = [cell for r in results for cell in r["cells"]]
    print(markdown_table(summarise(cells), front_ends.pop(), rules.pop()))
    return {"cells": cells}


def checked_grid(args, p: argparse.ArgumentParser) -> tuple[list[str], list[int], list[int]]:
    """The scenes, seeds and label counts asked for, every one checked before anything trains."""
    scenes = args.scenes.split(",")
    unknown = [name for name in scenes if name not in SCENES]
    if unknown:
        p.error(f"unknown scene {unknown[0]!r}; use {', '.join(SCENES)}")
    try:
        seeds, label_counts = [int(s) for s in args.seeds.split(",")], [int(n) for n in args.labels_per_class.split(",")]
    except ValueError:
        p.error(f"--labels-per-class and --seeds take comma-separated whole numbers, not {args.labels_per_class!r} / {args.seeds!r}")
    if args.select_by == "cv" and min(label_counts) < 2:
        p.error("--select-by cv (the default) holds each label out in turn and needs at least 2 labels a class; "
                "give --labels-per-class 2 or more, or --select-by valid_elbo")
    return scenes, seeds, label_counts


def main(argv: list[str] | None = None) -> dict:
    p = parser()
    args = p.parse_args(argv)
    try:
        args.m2_options = json.loads(args.m2_options or "{}")
    except json.JSONDecodeError as error:
        p.error(f"--m2-options is not JSON ({error}); give an object such as '{{\"class_prior\": \"learned\"}}'")
    if not isinstance(args.m2_options, dict):
        p.error("--m2-options must be a JSON object of M2 options, such as '{\"class_prior\": \"learned\"}'")
    if args.merge:
        return merge_files(args, p)
    if args.table:
        return print_table(args, p)
    scenes, seeds, label_counts = checked_grid(args, p)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = Path(args.json) if args.json else out / "results.json"
    result = {"config": {**vars(args), "m2_options": {**M2_OPTIONS, **args.m2_options}}, "cells": []}
    for scene_name in scenes:
        for seed in seeds:
            for lpc in label_counts:
                cell = run_cell(out, scene_name, seed, lpc, args)
                result["cells"].append(cell)
                result["summary"] = summarise(result["cells"])
                target.write_text(json.dumps(result, indent=1))
                rows = {name: round(e["balanced_accuracy"], 3) for name, e in cell.items() if isinstance(e, dict) and "balanced_accuracy" in e}
                print(f"{scene_name} seed {seed}, {lpc} labels a class ({cell['train_time_s']} s): {rows}", flush=True)
    for scene_name, by_lpc in result["summary"].items():
        for lpc, rows in by_lpc.items():
            print(f"{scene_name}, {lpc} labels a class: " + ", ".join(f"{n} {r['mean']:.3f}" + (f" +- {r['sd']:.3f}" if r["sd"] else "")
                                                                       for n, r in rows.items()))
    print(f"wrote {target}")
    return result


if __name__ == "__main__":
    main()
