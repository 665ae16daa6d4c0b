"""Prototype, not yet a cube option: an edge-preserving window for spectral scenes.

``patch=5`` replaces each pixel by the plain mean of its 5 x 5 window, which mixes neighbouring fields at every field
edge; a field of a few dozen pixels is all edge (benchmarks/field_edges.py). Here each neighbour is weighted by its
likeness to the centre pixel, ``exp(-d^2 / (2 s^2))`` with ``d^2`` the mean squared band difference of the
brightness-normalised spectra and ``s^2`` the median ``d^2`` between a pixel and its 4 direct neighbours (most
neighbours share a field, so this is the scene's within-field difference): across an edge the weights fall, within a
field the window still averages the noise away (a bilateral filter on spectra, Tomasi and Manduchi 1998).

This script writes such scenes for ``benchmarks/hyperspectral.py``, which reuses ``OUT/SCENE_seedS/scene.nc`` when it
exists; read them with ``--front-end components=8`` (the brightness is already removed and the window applied), so that
M2 and every baseline read the same filtered pixels::

    python benchmarks/edge_window.py --out /tmp/hs_edge --scenes voronoi,parcel --seeds 0,1,2
    python -m benchmarks.hyperspectral --out /tmp/hs_edge --scenes voronoi --seeds 0,1,2 --labels-per-class 5,10 \\
        --max-spread 8000 --no-map --front-end components=8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hyperspectral import SCENES, make_scene, write_netcdf  # noqa: E402


def edge_preserving_mean(x: np.ndarray, radius: int = 2) -> tuple[np.ndarray, float]:
    """``x`` (height, width, bands) with each pixel replaced by the mean of its ``2 radius + 1`` square window (edges
    mirrored), each neighbour weighted by ``exp(-d^2 / (2 s^2))``; returns the result and ``s^2``."""
    h, w, _ = x.shape
    x = np.asarray(x, dtype=np.float64)
    pad = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")

    def shifted(dy: int, dx: int) -> np.ndarray:
        return pad[radius + dy:radius + dy + h, radius + dx:radius + dx + w]

    direct = [np.mean((shifted(dy, dx) - x) ** 2, axis=2) for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))]
    s2 = max(float(np.median(np.stack(direct))), 1e-300)
    total, weights = np.zeros_like(x), np.zeros((h, w, 1))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            near = shifted(dy, dx)
            weight = np.exp(-np.mean((near - x) ** 2, axis=2, keepdims=True) / (2 * s2))
            total += weight * near
            weights += weight
    return total / weights, s2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the --out folder hyperspectral.py will read")
    parser.add_argument("--scenes", default="voronoi,parcel")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--size", type=int, default=145)
    parser.add_argument("--bands", type=int, default=200)
    parser.add_argument("--radius", type=int, default=2, help="the window's half side (2: 5 x 5)")
    args = parser.parse_args(argv)
    for name in args.scenes.split(","):
        if name not in SCENES:
            parser.error(f"unknown scene {name!r}; use {', '.join(SCENES)}")
        for seed in (int(s) for s in args.seeds.split(",")):
            scene = make_scene(name, args.size, args.bands, seed)
            x = np.asarray(scene["cube"], dtype=np.float64)
            x = x / x.mean(axis=2, keepdims=True)  # normalize=brightness
            filtered, s2 = edge_preserving_mean(x, args.radius)
            folder = Path(args.out) / f"{name}_seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            write_netcdf(folder / "scene.nc", {**scene, "cube": filtered.astype(np.float32)})
            print(f"{name} seed {seed}: s^2 = {s2:.4g}, wrote {folder / 'scene.nc'}", flush=True)


if __name__ == "__main__":
    main()
