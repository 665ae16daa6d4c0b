"""A tabular set with few features, like SDSS photometric colours, written as a partly labeled csv.

Five classes of objects seen in five bands (u, g, r, i, z) are described by six columns: the r magnitude, four
colours (u-g, g-r, r-i, i-z) and ``extent`` (a PSF-minus-model magnitude: about 0 for point sources, larger for
galaxies). Each class has its own intrinsic colour distribution, and they overlap on purpose:

``star``         a curved main-sequence locus in temperature (hot and blue to cool and red), point sources;
``galaxy``       red or blue by type and reddened by redshift, extended (less so when faint);
``quasar``       the blue "UV excess" colours, wandering with redshift, point sources, mostly faint;
``white_dwarf``  bluer than most stars, overlapping the quasars in u-g;
``m_dwarf``      the red end of the stellar locus, overlapping the coolest stars.

The photometric errors grow with magnitude (``sigma_b = sqrt(0.02^2 + (0.2 * 10^(0.4 (m_b - depth_b)))^2)`` per band,
the u band shallowest), so the noise is heteroscedastic: faint objects' colours smear into each other; colours are
differences of the noisy bands (their errors correlate), and the extent's error grows with the r-band error.

:func:`write_tabular` writes ``train.csv`` (``labels_per_class`` rows of each class with their class in the
``class`` column, every other cell of that column blank: a partly labeled file) and ``truth.csv`` (independent rows
of the same population, every class given): the held-out truth a benchmark scores on. :func:`tabular_dataset` reads
them back through the data layer (``csv:PATH?label=class``) as one :class:`~ppmodels.data.Dataset` whose training
split is every row of ``train.csv`` (its labels the whole budget), its validation split a tenth of the unlabeled ones
(labels hidden: the validation ELBO), and its test split ``truth.csv``.

    python benchmarks/tabular.py --out /tmp/sdss          # writes /tmp/sdss/train.csv and /tmp/sdss/truth.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

CLASSES = ("star", "galaxy", "quasar", "white_dwarf", "m_dwarf")
COLUMNS = ("r", "u_g", "g_r", "r_i", "i_z", "extent")
#: class shares of the population (stars and galaxies dominate, white dwarfs are rare)
SHARES = (0.40, 0.35, 0.10, 0.05, 0.10)
#: magnitude where a band's error reaches 0.2 (about 5 sigma): u shallowest, as in SDSS
DEPTH = {"u": 22.0, "g": 23.2, "r": 22.8, "i": 22.3, "z": 20.8}
ERROR_FLOOR = 0.02


def _beta(rng, a, b, n):
    return rng.beta(a, b, n)


def intrinsic(cls: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """True ``(r, u-g, g-r, r-i, i-z, extent)`` of ``n`` objects of class ``cls``, ``(n, 6)``."""
    e = lambda s: rng.normal(0.0, s, n)  # noqa: E731  intrinsic scatter
    if cls == "star":
        t = _beta(rng, 2, 2, n)  # 0 hot, 1 cool
        colours = (0.8 + 1.9 * t - 0.4 * t**2 + e(0.06), -0.1 + 1.5 * t + e(0.05), -0.05 + 0.4 * t + 1.2 * t**4 + e(0.05),
                   -0.02 + 0.25 * t + 0.6 * t**4 + e(0.05))
        r, extent = 14.0 + 8.5 * _beta(rng, 2, 1.2, n), e(0.02)
    elif cls == "galaxy":
        z, s = rng.uniform(0.02, 0.35, n), rng.uniform(0, 1, n)  # redshift; type, 0 late (blue) to 1 early (red)
        colours = (1.0 + 0.9 * s + 1.5 * z + e(0.12), 0.35 + 0.5 * s + 1.2 * z + e(0.08), 0.25 + 0.2 * s + 0.9 * z + e(0.06),
                   0.15 + 0.15 * s + 0.6 * z + e(0.06))
        r = 15.5 + 7.0 * _beta(rng, 3, 1.2, n)
        extent = np.exp(rng.normal(np.log(0.35), 0.5, n)) * 10 ** (-0.15 * (r - 17.0))  # faint galaxies look compact
    elif cls == "quasar":
        z = rng.uniform(0.3, 2.2, n)
        colours = (0.15 + 0.25 * np.sin(2 * z) + e(0.15), 0.15 + 0.15 * np.cos(3 * z) + e(0.12), 0.15 + 0.1 * np.sin(2.5 * z) + e(0.1),
                   0.05 + 0.1 * np.cos(2 * z) + e(0.1))
        r, extent = 17.0 + 5.5 * _beta(rng, 3, 1, n), e(0.03)
    elif cls == "white_dwarf":
        t = rng.uniform(0, 1, n)
        colours = (0.5 * t + e(0.08), -0.35 + 0.45 * t + e(0.06), -0.2 + 0.25 * t + e(0.06), -0.25 + 0.3 * t + e(0.06))
        r, extent = 15.5 + 6.0 * _beta(rng, 2, 1.5, n), e(0.02)
    elif cls == "m_dwarf":
        q = rng.uniform(0, 1, n)
        colours = (2.4 + e(0.2), 1.45 + e(0.1), 0.6 + 1.2 * q + e(0.08), 0.35 + 0.55 * q + e(0.06))
        r, extent = 15.0 + 7.5 * _beta(rng, 2, 1.2, n), e(0.02)
    else:
        raise ValueError(f"unknown class {cls!r}; use one of {', '.join(CLASSES)}")
    return np.stack([r, *colours, extent], axis=1)


def band_error(m: np.ndarray, band: str) -> np.ndarray:
    """Photometric error of magnitudes ``m`` in ``band``: a floor, and a sky-limited term rising 10^(0.4 m)."""
    return np.sqrt(ERROR_FLOOR**2 + (0.2 * 10 ** (0.4 * (m - DEPTH[band]))) ** 2)


def observe(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy measurements of true ``(r, colours, extent)`` rows: each band gets its magnitude-dependent error,
    colours are differences of the noisy bands, the extent's error grows with the r band's."""
    r, ug, gr, ri, iz, extent = truth.T
    g = r + gr
    bands = {"u": g + ug, "g": g, "r": r, "i": r - ri, "z": r - ri - iz}
    sigma = {b: band_error(m, b) for b, m in bands.items()}
    seen = {b: m + rng.normal(0.0, 1.0, len(m)) * sigma[b] for b, m in bands.items()}
    extent_seen = extent + rng.normal(0.0, 1.0, len(r)) * (0.01 + 2.0 * sigma["r"])
    return np.stack([seen["r"], seen["u"] - seen["g"], seen["g"] - seen["r"], seen["r"] - seen["i"], seen["i"] - seen["z"], extent_seen], axis=1)


def draw(n: int, rng: np.random.Generator, shares=SHARES) -> tuple[np.ndarray, np.ndarray]:
    """``n`` observed objects ``(n, 6)`` and their classes ``(n,)`` (indices into :data:`CLASSES`), classes drawn
    with ``shares``, rows shuffled."""
    counts = rng.multinomial(n, np.asarray(shares) / np.sum(shares))
    y = np.repeat(np.arange(len(CLASSES)), counts)
    truth = np.concatenate([intrinsic(c, k, rng) for c, k in zip(CLASSES, counts)])
    order = rng.permutation(n)
    return observe(truth, rng)[order].astype(np.float32), y[order]


def labeled_rows(y: np.ndarray, labels_per_class: int | dict, rng: np.random.Generator) -> np.ndarray:
    """Positions of the rows that keep their label: ``labels_per_class`` of each class (an int, or ``{class: n}``)."""
    wanted = labels_per_class if isinstance(labels_per_class, dict) else dict.fromkeys(range(len(CLASSES)), labels_per_class)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c, n in wanted.items() if n]))


def write_csv(path: Path, x: np.ndarray, classes: list[str]) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*COLUMNS, "class"])
        for row, c in zip(x, classes):
            out.writerow([f"{v:.5f}" for v in row] + [c])


def write_tabular(out: str | Path, n_train: int = 5000, n_truth: int = 5000, labels_per_class: int | dict = 10, seed: int = 0,
                  shares=SHARES) -> tuple[Path, Path]:
    """Write ``out/train.csv`` (partly labeled: ``labels_per_class`` labels a class, the other class cells blank) and
    ``out/truth.csv`` (independent rows, every class given); returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x, y = draw(n_train, rng, shares)
    keep = labeled_rows(y, labels_per_class, rng)
    names = [""] * len(y)
    for i in keep:
        names[i] = CLASSES[y[i]]
    x_truth, y_truth = draw(n_truth, rng, shares)
    write_csv(out / "train.csv", x, names)
    write_csv(out / "truth.csv", x_truth, [CLASSES[c] for c in y_truth])
    return out / "train.csv", out / "truth.csv"


def tabular_dataset(folder: str | Path, name: str = "tabular", seed: int = 0):
    """The two files of :func:`write_tabular` read through the data layer (``csv:...?label=class``, classes in the
    order of :data:`CLASSES`) as one dataset: train = every row of ``train.csv``, valid = a tenth of its unlabeled
    rows (for the validation ELBO), test = every row of ``truth.csv``."""
    from ppmodels.data import UNLABELED, from_arrays, load_dataset

    folder, order = Path(folder), ",".join(CLASSES)
    train = load_dataset(f"csv:{folder / 'train.csv'}?label=class&classes={order}")
    truth = load_dataset(f"csv:{folder / 'truth.csv'}?label=class&classes={order}")
    n = len(train.x)
    unlabeled = np.flatnonzero(train.y == UNLABELED)
    rng = np.random.default_rng(seed)
    valid = np.sort(rng.choice(unlabeled, max(1, len(unlabeled) // 10), replace=False))
    splits = {"train": np.setdiff1d(np.arange(n), valid), "valid": valid, "test": n + np.arange(len(truth.x))}
    data = from_arrays(name, np.concatenate([train.x, truth.x]), np.concatenate([train.y, truth.y]), likelihood=train.likelihood,
                       class_names=list(CLASSES), splits=splits)
    data.spec = f"csv:{folder / 'train.csv'}?label=class"
    return data


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for train.csv and truth.csv")
    p.add_argument("--rows", type=int, default=5000, help="rows of each file")
    p.add_argument("--labels-per-class", type=int, default=10, help="rows of each class that keep their label in train.csv")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for path in write_tabular(args.out, args.rows, args.rows, args.labels_per_class, args.seed):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
