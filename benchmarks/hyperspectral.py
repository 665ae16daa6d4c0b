"""A synthetic hyperspectral scene with the class structure of Indian Pines, and M2 against SVC on it.

The scene: ``height x width`` pixels, ``bands`` bands from 400 to 2500 nm, 16 classes whose pixel counts are those of
Indian Pines scaled to the scene (20 to 2455 pixels at 145 x 145), 51% background. Fields are contiguous patches
(groups of Voronoi cells). Each class has a smooth mean spectrum; classes come in pairs of similar spectra (like corn
no-till and corn min-till); every pixel is its class spectrum times an illumination factor (the main source of
variation, as topography and shade give), plus smooth within-class variation and sensor noise. Background pixels are
unsurveyed fields of the same crops, 40% of the fields mixtures of two of them.

Run (a few minutes on 2 cores)::

    python -m benchmarks.hyperspectral --out benchmarks/results/hyperspectral

It writes the scene (``scene.nc``), trains M2 with 10 labels per class (``ppmodels train m2 --labels 160``), maps the
scene (``ppmodels predict``), fits an SVC on the same 160 labeled pixels, and prints and writes (``results.json``) the
balanced accuracy of both on every labeled pixel outside the 160, and each class's predicted share against its true share.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

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


def compare(run: Path) -> dict:
    """M2 of ``run`` against the baselines of :mod:`ppmodels.analysis.baselines` (an untuned SVC; an SVC, logistic
    regression and label spreading tuned by stratified cross-validation) fitted on the run's labeled pixels (its whole
    budget, those it held out for selection too), scored on every other labeled pixel of the scene."""
    from ppmodels.analysis.baselines import BASELINES, fit_baselines
    from ppmodels.analysis.metrics import balanced_accuracy
    from ppmodels.runs import load, open_run_data

    data = open_run_data(run)
    dataset, budget = data.dataset, data.labeled
    labeled = budget.labeled.numpy()
    held = np.setdiff1d(np.flatnonzero(dataset.y >= 0), dataset.splits["train"][labeled])
    x_e, y_e = dataset.x[held], dataset.y[held]
    k = dataset.num_classes
    m2 = load(run).predict(x_e)
    result = {"labeled_pixels": int(labeled.sum()), "evaluated_pixels": int(len(held)),
              "m2": {"balanced_accuracy": balanced_accuracy(y_e, m2), "share_ratio": share_ratios(y_e, m2, k).round(3).tolist()}}
    for name, (estimator, info) in fit_baselines(budget, BASELINES, seed=0).items():
        predicted = estimator.predict(x_e.reshape(len(x_e), -1))
        result[name] = {"balanced_accuracy": balanced_accuracy(y_e, predicted), "share_ratio": share_ratios(y_e, predicted, k).round(3).tolist(), **info}
    for entry in (v for v in result.values() if isinstance(v, dict)):
        entry["max_share_ratio"] = float(np.nanmax(entry["share_ratio"]))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/hyperspectral", help="folder for the scene, the run and results.json")
    parser.add_argument("--size", type=int, default=145, help="scene height and width in pixels")
    parser.add_argument("--bands", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--illumination", type=float, default=0.25, help="standard deviation of the log brightness factor of each pixel")
    args = parser.parse_args(argv)

    from ppmodels.commands.predict import predict
    from ppmodels.commands.train import train
    from ppmodels.infer import TrainConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene = write_netcdf(out / "scene.nc", synthetic_scene(args.size, args.size, args.bands, seed=args.seed, illumination=args.illumination))
    start = time.perf_counter()
    config = TrainConfig(epochs=args.epochs, batch_size=200, select_by="valid_elbo", patience=None, seed=args.seed)
    options = M2_OPTIONS
    train("m2", f"cube:{scene}", out / "m2", labels=16 * args.labels_per_class, train_config=config, model_options=options,
          overwrite=True, progress=False)
    train_s = time.perf_counter() - start
    predict(out / "m2", f"cube:{scene}", out / "map.nc")
    result = {"scene": f"{args.size}x{args.size}x{args.bands}, seed {args.seed}, illumination {args.illumination}", "epochs": args.epochs, "m2_options": options,
              "train_time_s": round(train_s, 1), **compare(out / "m2")}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    for name, entry in result.items():
        if isinstance(entry, dict) and "balanced_accuracy" in entry:
            print(f"{name:>12}: balanced accuracy {entry['balanced_accuracy']:.4f}, largest predicted/true share {entry['max_share_ratio']:.2f}")
    print(f"M2 trained in {train_s:.0f} s; wrote {out / 'results.json'}, {out / 'map.nc'}, {out / 'map.png'}")
    return result


M2_OPTIONS = {"z_dim": 8, "hidden": [128]}

if __name__ == "__main__":
    main()
