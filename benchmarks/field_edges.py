"""Where M2's over-predicted class comes from: the pixels wrongly given the class with the largest predicted/true share,
and how many of them lie at a field's edge (within ``width`` pixels of a pixel of another label, the reach of a
``patch=2*width+1`` window), against the same share for every evaluated pixel.

Run on runs of ``benchmarks/hyperspectral.py`` (``--out`` folder, ``SCENE_seedS/m2_...``)::

    python benchmarks/field_edges.py /tmp/hs/voronoi_seed1/m2_5per_class_12epochs_normalizebrightness_patch5_components8
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hyperspectral import evaluated_pixels, share_ratios  # noqa: E402


def near_other_field(gt: np.ndarray, width: int = 2) -> np.ndarray:
    """True where a pixel of another label (background included) lies within ``width`` pixels along each axis (the
    window of ``patch=2*width+1``: some label in it differs from the centre's when its largest or smallest does); the
    image border counts as no other field."""
    from scipy.ndimage import maximum_filter, minimum_filter

    size = 2 * width + 1
    return (maximum_filter(gt, size=size, mode="nearest") != gt) | (minimum_filter(gt, size=size, mode="nearest") != gt)


def edge_report(run: Path, width: int = 2) -> dict:
    """For the run's most over-predicted class: its size, how often it is predicted on the evaluated pixels (every
    labeled pixel outside the run's labels, as in ``hyperspectral.compare``), which classes those pixels truly are,
    and the share at a field's edge of those wrongly given it, of its own pixels and of every evaluated pixel."""
    from ppmodels.runs import load, open_run_data

    data = open_run_data(run)
    dataset = data.dataset
    gt = dataset.y.reshape(dataset.metadata["geometry"]["shape"])  # the scene's map, background UNLABELED
    held = evaluated_pixels(data)
    y, k = dataset.y[held], dataset.num_classes
    pred = load(run).predict(dataset.x[held])
    ratios = share_ratios(y, pred, k)
    c = int(np.nanargmax(ratios))
    edge = near_other_field(gt, width).ravel()
    wrong = held[(pred == c) & (y != c)]
    return {"run": str(run), "class": c, "class_pixels": int(np.sum(dataset.y == c)), "share_ratio": float(ratios[c]),
            "predicted": int(np.sum(pred == c)), "evaluated_of_class": int(np.sum(y == c)),
            "taken_from": np.bincount(y[(pred == c) & (y != c)], minlength=k).tolist(),
            "edge_share": {"wrongly_given_class": float(edge[wrong].mean()) if len(wrong) else None,
                           "class_own_pixels": float(edge[dataset.y == c].mean()), "every_evaluated_pixel": float(edge[held].mean())},
            "width": width}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="M2 run folders of benchmarks/hyperspectral.py")
    parser.add_argument("--width", type=int, default=2, help="a field's edge: within this many pixels of another label (2: patch=5)")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args(argv)
    reports = [edge_report(run, args.width) for run in args.runs]
    for r in reports:
        e = r["edge_share"]
        print(f"{r['run']}: class {r['class']} ({r['class_pixels']} pixels) predicted {r['predicted']} times on {r['evaluated_of_class']} of its own "
              f"(share ratio {r['share_ratio']:.1f}); at a field's edge: {e['wrongly_given_class']:.2f} of those wrongly given it, "
              f"{e['class_own_pixels']:.2f} of its own pixels, {e['every_evaluated_pixel']:.2f} of every evaluated pixel")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))
    return reports


if __name__ == "__main__":
    main()
