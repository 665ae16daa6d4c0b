"""A second synthetic hyperspectral scene, written independently of :mod:`benchmarks.hyperspectral`'s.

Where that scene has Voronoi fields, class spectra made of random bumps, a log-normal brightness factor per pixel and
white noise, this one is built the other way a remote-sensing scientist would model it:

- **Layout**: rectangular parcels from recursive (guillotine) cuts of the scene, as a cadastre is, 6 to 30 pixels on a
  side, separated by one-pixel lanes of background; parcels are dealt to the 16 classes until each class has about
  Indian Pines' share of the labeled pixels; the rest is unsurveyed land.
- **Spectra** are linear mixtures of five endmembers with physical absorption features (soil with a clay feature at
  2200 nm, green vegetation with its red edge and leaf-water dips at 1450/1940 nm, crop residue with cellulose at
  2100 nm, senescent leaves, shade). Each of 8 crops has its own abundances and a small crop-specific pigment
  signature; each crop comes in two management variants (like corn no-till and corn min-till) that differ by 8% of
  the area in residue against green cover. Fields differ from each other (a per-parcel abundance offset) and pixels
  within a field (a per-pixel Dirichlet draw).
- **Illumination**: a smooth terrain shading factor (cosine of the incidence angle on a random low-frequency surface,
  0.55-1.15) times a small per-pixel jitter, plus an additive atmospheric path radiance that falls with wavelength
  (Rayleigh-like, ``wavelength^-4``) and varies smoothly across the scene (haze).
- **Noise**: signal-dependent (shot plus read noise), ten times larger in the water-vapour absorption bands
  (1350-1450 and 1800-1950 nm), where real sensors see almost nothing.

Nothing here is tuned to :mod:`benchmarks.hyperspectral`'s recipe; it is the check that a recipe works for reasons.
"""

from __future__ import annotations

import numpy as np

from benchmarks.hyperspectral import INDIAN_PINES_COUNTS

#: the five endmembers of every mixture, in order
ENDMEMBERS = ("soil", "green vegetation", "residue", "senescent", "shade")


def gaussian(w: np.ndarray, center: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((w - center) / width) ** 2)


def endmember_spectra(wavelength: np.ndarray) -> np.ndarray:
    """Reflectance ``(5, bands)`` of :data:`ENDMEMBERS` at ``wavelength`` (nm)."""
    w = wavelength
    soil = 0.08 + 0.25 * (w - 400) / 2100 - 0.06 * gaussian(w, 2200, 40) - 0.04 * gaussian(w, 1420, 60) - 0.05 * gaussian(w, 1920, 70)
    red_edge = 1 / (1 + np.exp(-(w - 715) / 18))
    green = (0.04 + 0.06 * gaussian(w, 550, 35) + 0.42 * red_edge - 0.45 * red_edge * (w > 1100) * (1 - np.exp(-(w - 1100) / 900))
             - 0.16 * gaussian(w, 1450, 70) - 0.2 * gaussian(w, 1940, 80) - 0.05 * gaussian(w, 980, 40))
    residue = 0.12 + 0.3 * (1 - np.exp(-(w - 400) / 700)) - 0.08 * gaussian(w, 2100, 45) - 0.06 * gaussian(w, 1730, 40) - 0.08 * gaussian(w, 1940, 80)
    senescent = 0.5 * green + 0.5 * residue + 0.05 * gaussian(w, 650, 60)
    shade = 0.02 + 0.01 * (w - 400) / 2100
    return np.clip(np.stack([soil, green, residue, senescent, shade]), 0.005, None)


def parcels(height: int, width: int, rng: np.random.Generator, smallest: int = 6, largest: int = 30) -> list[tuple[int, int, int, int]]:
    """Rectangles ``(top, left, bottom, right)`` (exclusive) from recursive cuts of the scene, each 6-30 pixels a side."""
    out, todo = [], [(0, 0, height, width)]
    while todo:
        t, l, b, r = todo.pop()
        h, w = b - t, r - l
        if h <= largest and w <= largest and (min(h, w) < 2 * smallest or rng.random() < 0.5):
            out.append((t, l, b, r))
            continue
        if h >= w:
            cut = int(rng.integers(t + smallest, b - smallest + 1)) if h >= 2 * smallest else t + h // 2
            todo += [(t, l, cut, r), (cut, l, b, r)]
        else:
            cut = int(rng.integers(l + smallest, r - smallest + 1)) if w >= 2 * smallest else l + w // 2
            todo += [(t, l, b, cut), (t, cut, b, r)]
    return out


def parcel_map(height: int, width: int, rng: np.random.Generator, background: float = 0.51) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, parcel id)`` maps: 0 for lanes and unsurveyed parcels, 1..16 dealt so that each class gets about its
    Indian Pines share of ``(1 - background)`` of the pixels (every class at least one parcel)."""
    rects = parcels(height, width, rng)
    rng.shuffle(rects)
    labels = np.zeros((height, width), dtype=np.int64)
    ids = np.full((height, width), -1, dtype=np.int64)
    counts = np.asarray(INDIAN_PINES_COUNTS, dtype=float)
    want = counts / counts.sum() * height * width * (1 - background)
    have = np.zeros(len(counts))
    for i, (t, l, b, r) in enumerate(rects):
        ids[t:b, l:r] = i
        inner = (slice(t + 1, b), slice(l + 1, r))  # the lane: a one-pixel border left as background
        size = (b - t - 1) * (r - l - 1)
        need = want - have
        k = int(np.argmax(need / want))  # the class furthest below its share
        if need[k] >= size / 2 or have[k] == 0:
            labels[inner] = k + 1
            have[k] += size
    return labels, ids


def parcel_scene(height: int = 145, width: int = 145, bands: int = 200, seed: int = 0, noise: float = 0.004,
                 pair_difference: float = 0.08) -> dict:
    """The scene as arrays: ``cube`` ``(height, width, bands)`` radiance-like reflectance, ``labels`` ``(height,
    width)`` (0 background, 1..16) and ``wavelength`` ``(bands,)`` in nm (the keys of
    :func:`benchmarks.hyperspectral.synthetic_scene`, so the same writers take it)."""
    rng = np.random.default_rng(seed)
    wavelength = np.linspace(400, 2500, bands)
    ends = endmember_spectra(wavelength)
    labels, ids = parcel_map(height, width, rng)
    n, k = height * width, len(INDIAN_PINES_COUNTS)
    # 8 crops: abundances over the endmembers and a pigment signature; variant 2 of each moves cover to residue
    crops = rng.dirichlet([1.5, 4.0, 1.5, 1.0, 0.5], size=k // 2)
    abundance = np.repeat(crops, 2, axis=0)
    abundance[1::2, 2] += pair_difference
    abundance[1::2, 1] -= np.minimum(pair_difference, abundance[1::2, 1] - 0.02)
    abundance /= abundance.sum(1, keepdims=True)
    pigment = np.repeat(rng.normal(0, 0.015, (k // 2, 3)), 2, axis=0)
    signature = pigment @ np.stack([gaussian(wavelength, c, 30) for c in (480, 560, 680)])
    # unsurveyed parcels: a random crop of the 16 or bare soil / fallow
    num_parcels = ids.max() + 1
    parcel_class = np.zeros(num_parcels, dtype=np.int64)
    for i in range(num_parcels):
        inner = labels[ids == i]
        parcel_class[i] = inner.max() if inner.size else 0
    unsurveyed = parcel_class == 0
    parcel_class[unsurveyed] = rng.integers(1, k + 2, unsurveyed.sum())  # k+1: fallow
    fallow = np.array([0.6, 0.05, 0.3, 0.0, 0.05])
    mean_abundance = np.vstack([abundance, fallow])
    mean_signature = np.vstack([signature, np.zeros(bands)])
    field_offset = rng.normal(0, 0.03, (num_parcels, 5))  # fields differ from each other
    pixel_class = parcel_class[ids.ravel()] - 1
    a = np.clip(mean_abundance[pixel_class] + field_offset[ids.ravel()], 0.01, None)
    a = np.stack([rng.dirichlet(row * 60) for row in a])  # pixels within a field differ
    lanes = (labels.ravel() == 0) & ~unsurveyed[ids.ravel()]
    a[lanes] = rng.dirichlet([8, 1, 2, 1, 1], lanes.sum())  # lanes: dirt tracks
    reflectance = a @ ends + np.where(lanes[:, None], 0.0, mean_signature[pixel_class])
    # terrain shading: the cosine of the incidence angle on a smooth random surface, sun from the south-east
    yy, xx = np.mgrid[:height, :width] / max(height, width)
    surface = sum(rng.normal(0, 1) / f * np.sin(2 * np.pi * (f * rng.uniform(0.5, 1.5) * yy + rng.uniform()))
                  * np.cos(2 * np.pi * (f * rng.uniform(0.5, 1.5) * xx + rng.uniform())) for f in (1, 2, 3, 5))
    gy, gx = np.gradient(surface * 0.6 * max(height, width) / 20)
    sun = np.array([0.5, 0.5, 0.707])
    shading = (-gy * sun[0] - gx * sun[1] + sun[2]) / np.sqrt(gx ** 2 + gy ** 2 + 1)
    shading = 0.55 + 0.6 * (shading - shading.min()) / np.ptp(shading)
    light = shading.ravel()[:, None] * np.exp(rng.normal(0, 0.04, (n, 1)))
    haze = (0.3 + 0.7 * (0.5 + 0.5 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 1.2) + rng.uniform())))).ravel()[:, None]
    path = 0.03 * (wavelength / 400.0) ** -4
    signal = light * reflectance + haze * path
    water = ((wavelength > 1350) & (wavelength < 1450)) | ((wavelength > 1800) & (wavelength < 1950))
    read = noise * np.where(water, 10.0, 1.0)
    cube = signal + rng.normal(0, 1, signal.shape) * np.sqrt(noise * 0.5 * np.abs(signal) * noise + read ** 2)
    return {"cube": cube.reshape(height, width, bands).astype(np.float32), "labels": labels, "wavelength": wavelength}
