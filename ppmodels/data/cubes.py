"""Labelled image cubes (hyperspectral scenes): every pixel a data point, its spectrum the features.

Two sources, registered when :mod:`ppmodels.data` is imported:

``cube:PATH?var=NAME&labels=NAME``
    a netCDF file or a zarr store (a folder; needs the zarr package), read by xarray, whose variable ``var`` has dims ``(y, x, band)`` or ``(band, y, x)`` and whose
    variable ``labels`` is the ground-truth map over the same ``(y, x)``; the band coordinate (wavelengths, say) and
    the y/x coordinates are kept.
``mat:PATH?x=NAME&y=NAME&gt=PATH``
    a MATLAB file holding the cube ``x`` (rows, columns, bands) and the ground truth ``y`` (rows, columns); ``gt``
    names another .mat file for the ground truth, as the public scenes ship it (``Indian_pines_gt.mat``). Version 5
    files are read by scipy, version 7.3 (HDF5) files by h5py, whose axes come in reverse order and are turned back.

Without ``var``/``x`` the only 3-D array is the cube; without ``labels``/``y`` the only 2-D array is the ground truth.
Further options: ``background=0`` (the ground-truth value of unlabeled pixels, ``none`` to make every value a class),
``bands=START:STOP`` (inclusive, by band coordinate) or ``bands=V1,V2,...``, ``standardize=band`` (default: each band
to mean 0 and standard deviation 1 over the scene, with the Gaussian likelihood; ``none`` keeps the raw values) and
``likelihood=``, and two front ends applied before the standardisation (:func:`front_end`): ``normalize=brightness``
(each spectrum divided by its mean over the bands, which removes illumination and shade) and ``patch=K`` (each pixel
replaced by the mean spectrum of the K x K window around it, K odd: the simplest spectral-spatial feature; with
``window=edges`` each neighbour weighs by its likeness to the centre pixel, so that fields are not mixed at their
edges), and one
applied after it, ``components=K`` (each pixel projected onto the scene's K principal axes: :func:`principal_axes`).
Any other option is refused. The transform is recorded in ``dataset.metadata["cube"]``; ``ppmodels train`` stores it in the run,
so ``ppmodels predict`` applies the training scene's transform to any scene.

A ``cube:`` scene larger than :data:`LAZY_CUBE_BYTES` (1 GiB as float32) stays on disk: its pixels are read a block
of lines at a time (:mod:`ppmodels.data.lazy`), the band statistics and the checks come from one streaming pass, and
only the ground-truth map is held in memory. ``lazy=1`` keeps a smaller scene on disk too, ``lazy=0`` reads any scene
into memory. MATLAB files are always read whole (version 5 files cannot be read in parts).

Background pixels are unlabeled training points (label ``UNLABELED``), useful to a semi-supervised model; the
labeled pixels are split 70/10/20 (stratified) into train, valid and test.

The public Indian Pines scene, ``load_dataset("mat:Indian_pines_corrected.mat?gt=Indian_pines_gt.mat")``, gives 21025
pixels (145 x 145) of 200 bands and 16 classes, its 10776 background pixels labeled -1. A small scene made on the spot:

Example::

    import scipy.io
    rng = np.random.default_rng(0)
    scipy.io.savemat("scene.mat", {"cube": rng.random((20, 15, 6))})
    scipy.io.savemat("scene_gt.mat", {"gt": rng.integers(0, 4, (20, 15))})     # 0: background
    dataset = load_dataset("mat:scene.mat?gt=scene_gt.mat")
    dataset.x.shape            # (300, 6): 20 x 15 pixels, 6 bands
    dataset.num_classes        # 3; the background pixels have y = -1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ..errors import DataError
from ..files import atomic_write
from .dataset import UNLABELED, Dataset
from .lazy import DiskArray, LazyRows, RowStats
from .sources import _existing, _lazy_option, open_source, register_source
from .splits import stratified_splits

STANDARDIZE = ("band", "none")
NORMALIZE = ("none", "brightness")
#: how ``patch=K`` weighs a window's pixels: ``mean`` all alike; ``edges`` by their likeness to the centre pixel, so that
#: the window does not average across a field's edge (:func:`edge_preserving_mean`)
WINDOWS = ("mean", "edges")
#: the options a cube spec may carry (``cube:`` and ``mat:``, the public scenes); any other is refused, not ignored
#: (:func:`~ppmodels.data.sources.parse_spec`)
CUBE_OPTIONS = frozenset({"var", "labels", "lazy", "x", "y", "gt", "background", "bands", "standardize", "likelihood", "normalize", "patch", "window", "components"})
RECORD = "run_record"  # the option through which open_cube hands a run's recorded transform to the loaders
LAZY_CUBE_BYTES = 1 << 30  # a cube: scene larger than this (as float32) stays on disk unless ?lazy=0
MOMENT_BYTES = 16 << 20  # float32 pixels a block when the band statistics of a cube in memory are summed
EDGE_BLOCK_BYTES = 1 << 20  # float64 rows a block of window=edges (edge_preserving_mean): 2.4 times faster than whole-cube blocks, in cache


class PixelRows:
    """The pixels of a cube left on disk as rows ``(height * width, bands)``, for :class:`~ppmodels.data.lazy.DiskArray`:
    ``rows[start:stop]`` reads the lines that hold those pixels (the chosen bands only) and returns them as float32.

    :param array: the cube as a lazily loaded ``xarray.DataArray`` (dims in the file's order).
    :param spatial: its (y, x) dims; the one other dim is ``band_dim``.
    :param keep: the band positions chosen (``None``: all), in the order wanted.
    :param source: the open ``xarray.Dataset``, kept so that the file stays open while the rows are in use.
    """

    def __init__(self, array, spatial: tuple[str, str], band_dim: str, keep: np.ndarray | None = None, source=None):
        self.array, self.spatial, self.band_dim, self.keep, self.source = array, spatial, band_dim, keep, source
        self.height, self.width = array.sizes[spatial[0]], array.sizes[spatial[1]]
        # the chosen bands as read (in file order: HDF5 reads need increasing indices) and their order as wanted
        self._wanted, self._order = (None, None) if keep is None else np.unique(keep, return_inverse=True)
        bands = array.sizes[band_dim] if keep is None else len(keep)
        self.shape, self.dtype = (self.height * self.width, bands), np.dtype(np.float32)

    def with_bands(self, keep: np.ndarray) -> "PixelRows":
        """The same pixels with only the bands at positions ``keep`` (of the bands this view has)."""
        keep = np.asarray(keep, dtype=np.int64)
        return PixelRows(self.array, self.spatial, self.band_dim, keep if self.keep is None else self.keep[keep], self.source)

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, _ = key.indices(self.shape[0])
        if stop <= start:
            return np.empty((0, self.shape[1]), dtype=np.float32)
        first, last = start // self.width, (stop - 1) // self.width + 1
        selection = {self.spatial[0]: slice(first, last)}
        if self.keep is not None:
            selection[self.band_dim] = self._wanted
        lines = np.asarray(self.array.isel(selection).transpose(*self.spatial, self.band_dim).values)
        if self.keep is not None:
            lines = lines[..., self._order]
        offset = first * self.width
        return np.asarray(lines.reshape(-1, lines.shape[-1])[start - offset:stop - offset], dtype=np.float32)


@dataclass
class Cube:
    """A scene as arrays: ``values`` ``(height, width, bands)`` (or :class:`PixelRows` left on disk), ``labels``
    ``(height, width)`` or ``None``, and the coordinates of each axis (``band_dim`` names the band axis: ``band``,
    ``wavelength``, ...). ``attrs``: the attributes (units, long names) of each coordinate, by dim name, and those of
    the ground truth under ``labels`` (CF ``flag_values``/``flag_meanings`` name its classes)."""

    values: np.ndarray | PixelRows
    labels: np.ndarray | None
    y: np.ndarray
    x: np.ndarray
    band: np.ndarray
    band_dim: str = "band"
    y_dim: str = "y"
    x_dim: str = "x"
    attrs: dict = field(default_factory=dict)


# ----- reading ------------------------------------------------------------------------------------------------
def read_xarray(path: Path, var: str | None, labels: str | None, lazy: bool | None = False) -> Cube:
    """The cube ``var`` and ground truth ``labels`` of a netCDF file (or a zarr store, a folder), cube axes ordered
    (y, x, band). ``lazy``: leave the cube's values on disk (:class:`PixelRows`, which keeps the file open); ``None``:
    when it is larger than :data:`LAZY_CUBE_BYTES` as float32."""
    import xarray as xr

    try:
        ds = xr.open_dataset(path, engine="zarr" if path.is_dir() else None, cache=False)
        try:
            cube = _xarray_cube(ds, path, var, labels, lazy)
        except BaseException:
            ds.close()
            raise
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable netCDF file or zarr store ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); check the file") from None
    if not isinstance(cube.values, PixelRows):
        ds.close()
    return cube


def _xarray_cube(ds, path: Path, var: str | None, labels: str | None, lazy: bool | None) -> Cube:
    var = var or _only(path, {k: v.ndim for k, v in ds.data_vars.items()}, 3, "var")
    labels = labels or _only(path, {k: v.ndim for k, v in ds.data_vars.items()}, 2, "labels", required=False)
    for key, name in ((var, "var"), (labels, "labels")):
        if key is not None and key not in ds.data_vars:
            raise DataError(f"{path} has no variable {key!r} (it has {', '.join(ds.data_vars)}); fix ?{name}=NAME")
    cube = ds[var]
    if cube.ndim != 3:
        raise DataError(f"variable {var!r} of {path} has dims {cube.dims}; a cube needs 3: (y, x, band) or (band, y, x)")
    spatial = ds[labels].dims if labels else tuple(d for d in cube.dims if d in ("y", "x"))
    band_dims = [d for d in cube.dims if d not in spatial]
    if len(spatial) != 2 or len(band_dims) != 1 or not set(spatial) <= set(cube.dims):
        raise DataError(f"cannot tell the band axis of {var!r} (dims {cube.dims}) in {path}; name the spatial dims y and x, "
                        f"or give a labels map over two of its dims")
    truth = None if labels is None else ds[labels].transpose(*spatial).values
    coords = [_coord(cube, d) for d in (*spatial, band_dims[0])]
    if lazy is None:
        lazy = 4 * cube.size > LAZY_CUBE_BYTES
    values = PixelRows(cube, spatial, band_dims[0], source=ds) if lazy else np.asarray(cube.transpose(*spatial, band_dims[0]).values)
    attrs = {dim: dict(ds[dim].attrs) for dim in (*spatial, band_dims[0]) if dim in ds.coords}
    attrs["labels"] = dict(ds[labels].attrs) if labels else {}
    return Cube(values, truth, *coords, band_dim=band_dims[0], y_dim=spatial[0], x_dim=spatial[1], attrs=attrs)


def _coord(array, dim: str) -> np.ndarray:
    return np.asarray(array[dim].values) if dim in array.coords else np.arange(array.sizes[dim])


def read_mat(path: Path, x_key: str | None, y_key: str | None, gt: Path | None = None) -> Cube:
    """The cube ``x_key`` and ground truth ``y_key`` (from ``gt`` when given) of MATLAB files (v5 or v7.3)."""
    arrays = _mat_arrays(path)
    truth_arrays = arrays if gt is None else _mat_arrays(gt)
    x_key = x_key or _only(path, {k: v.ndim for k, v in arrays.items()}, 3, "x")
    y_key = y_key or _only(gt or path, {k: v.ndim for k, v in truth_arrays.items()}, 2, "y", required=gt is not None)
    for source, table, key, name in ((path, arrays, x_key, "x"), (gt or path, truth_arrays, y_key, "y")):
        if key is not None and key not in table:
            raise DataError(f"{source} has no array {key!r} (it has {', '.join(table) or 'none'}); fix ?{name}=NAME")
    values, truth = arrays[x_key], None if y_key is None else truth_arrays[y_key]
    if values.ndim != 3:
        raise DataError(f"array {x_key!r} of {path} has shape {values.shape}; a cube needs 3 axes (rows, columns, bands)")
    if truth is not None and truth.shape != values.shape[:2]:
        if truth.shape != values.shape[1:]:
            raise DataError(f"ground truth {y_key!r} has shape {truth.shape} but the cube {x_key!r} has {values.shape}; give the map of this scene")
        values = np.moveaxis(values, 0, -1)  # (bands, rows, columns)
    h, w, b = values.shape
    return Cube(values, truth, np.arange(h), np.arange(w), np.arange(b))


def _mat_arrays(path: Path) -> dict[str, np.ndarray]:
    """The numeric arrays of a .mat file by name; v7.3 (HDF5) arrays transposed back to MATLAB's axis order."""
    import h5py
    import scipy.io

    path = _existing(str(path))
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                return {k: np.asarray(v[()]).T for k, v in f.items() if isinstance(v, h5py.Dataset) and v.dtype.kind in "fiub"}
        content = scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise DataError(f"{path} is not a readable MATLAB file ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); check the file") from None
    return {k: v for k, v in content.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "fiub"}


def _only(path: Path, ndims: dict[str, int], ndim: int, option: str, required: bool = True) -> str | None:
    """The name of the one array with ``ndim`` axes, for an option the spec left out."""
    names = [k for k, d in ndims.items() if d == ndim]
    if len(names) == 1:
        return names[0]
    if not names and not required:
        return None
    what = "cube (3 axes)" if ndim == 3 else "ground-truth map (2 axes)"
    raise DataError(f"{path} has {len(names) or 'no'} candidate {what}{': ' + ', '.join(names) if names else ''}; name it with ?{option}=NAME")


# ----- from a cube to a dataset ---------------------------------------------------------------------------------
def select_bands(cube: Cube, bands: str | None) -> Cube:
    """The bands chosen by coordinate: ``START:STOP`` (inclusive) or a comma-separated list of values."""
    if not bands:
        return cube
    coords = cube.band.astype(np.float64)
    try:
        values = [float(v) if v.strip() else None for v in bands.split(":" if ":" in bands else ",")]
    except ValueError:
        raise DataError(f"bands={bands!r} is neither START:STOP nor a list of numbers; write e.g. bands=400:900 or bands=10,20,30") from None
    if ":" in bands:
        start, stop = (-np.inf if values[0] is None else values[0]), (np.inf if values[-1] is None else values[-1])
        keep = np.flatnonzero((coords >= start) & (coords <= stop))
    else:
        wanted = [v for v in values if v is not None]
        missing = [v for v in wanted if not np.isclose(coords, v).any()]
        if missing:
            raise DataError(f"bands {', '.join(f'{v:g}' for v in missing)} are not {cube.band_dim} coordinates of the cube "
                            f"(it has {coords.min():g}..{coords.max():g}); pick existing ones")
        keep = np.array([int(np.flatnonzero(np.isclose(coords, v))[0]) for v in wanted], dtype=np.int64)
    if not len(keep):
        raise DataError(f"bands={bands} selects none of the cube's {cube.band_dim} coordinates {coords.min():g}..{coords.max():g}; widen the range")
    values = cube.values.with_bands(keep) if isinstance(cube.values, PixelRows) else cube.values[..., keep]
    return Cube(values, cube.labels, cube.y, cube.x, cube.band[keep], cube.band_dim, cube.y_dim, cube.x_dim, cube.attrs)


def pixel_labels(labels: np.ndarray, background: int | None, classes: list | None = None) -> tuple[np.ndarray, list]:
    """Per-pixel class numbers 0..K-1 (``UNLABELED`` for ``background``) and the ground-truth value of each class."""
    flat = np.asarray(labels).ravel()
    if flat.dtype.kind == "f" and (~np.isfinite(flat) | (flat != np.round(flat))).any():
        raise DataError("the ground-truth map holds values that are not whole numbers; give integer class codes")
    flat = flat.astype(np.int64)
    negative = np.unique(flat[(flat < 0) & (flat != (background if background is not None else 0))])
    if len(negative):
        raise DataError(f"the ground-truth map holds negative values ({', '.join(map(str, negative[:5].tolist()))}); class codes are 0 or "
                        f"more, with background={background if background is not None else 'none'}; pass ?background=VALUE if "
                        f"{negative[0]} marks unlabeled pixels")
    if classes is None:
        classes = [int(v) for v in np.unique(flat) if background is None or v != background]
    return class_numbers(flat, classes), classes


def class_numbers(flat: np.ndarray, classes) -> np.ndarray:
    """The position of each value of ``flat`` in ``classes``, ``UNLABELED`` where it is none of them."""
    flat = np.asarray(flat, dtype=np.int64)
    values = np.asarray(classes, dtype=np.int64)
    if not len(values):
        return np.full(flat.shape, UNLABELED, dtype=np.int64)
    order = np.argsort(values)
    pos = np.clip(np.searchsorted(values[order], flat), 0, len(values) - 1)
    found = values[order][pos] == flat
    return np.where(found, order[pos], UNLABELED).astype(np.int64)


def cube_splits(y: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Labeled pixels split 70/10/20 (stratified); unlabeled (background) pixels all train, unlabeled."""
    labeled = np.flatnonzero(y != UNLABELED)
    if len(labeled) < 3:
        raise DataError(f"the ground truth labels only {len(labeled)} pixels; need at least 3 (or pass background=none)")
    parts = stratified_splits(y[labeled], len(labeled), seed=seed)
    background = np.flatnonzero(y == UNLABELED)
    return {"train": np.sort(np.concatenate([labeled[parts["train"]], background])), "valid": labeled[parts["valid"]], "test": labeled[parts["test"]]}


def cube_dataset(cube: Cube, name: str, options: dict) -> Dataset:
    """Pixels as data points, spectra standardised per band (or by the transform of ``options[RECORD]``, a run's)."""
    record = options.get(RECORD) if isinstance(options.get(RECORD), dict) else None
    cube = select_bands(cube, options.get("bands"))
    on_disk = isinstance(cube.values, PixelRows)
    h, w, b = (cube.values.height, cube.values.width, cube.values.shape[1]) if on_disk else cube.values.shape
    standardize = (record or {}).get("standardize", options.get("standardize", "band"))
    if standardize not in STANDARDIZE:
        raise DataError(f"standardize={standardize!r} is unknown; use one of {', '.join(STANDARDIZE)}")
    # a run's record says how it read its scene (a run from before these options read raw pixels)
    normalize = record.get("normalize", "none") if record else options.get("normalize", "none")
    patch = _patch_option(record.get("patch", 1) if record else options.get("patch", 1))
    window = record.get("window", "mean") if record else options.get("window", "mean")
    if window not in WINDOWS:
        raise DataError(f"window={window!r} is unknown; use one of {', '.join(WINDOWS)}")
    if window != "mean" and patch == 1:
        raise DataError(f"window={window} weighs the pixels of a patch; give its size too, e.g. ?patch=5&window={window}")
    components = _components_option(record.get("components", 0) if record else options.get("components", 0), b)
    record = dict(record) if record else {"standardize": standardize, "bands": cube.band.tolist(), "band_dim": cube.band_dim}
    if len(record["bands"]) != b:
        raise DataError(f"the cube of {name!r} has {b} bands but the run was trained on {len(record['bands'])}; select the same bands with ?bands=")
    if normalize not in NORMALIZE:
        raise DataError(f"normalize={normalize!r} is unknown; use one of {', '.join(NORMALIZE)}")
    if on_disk and (normalize != "none" or patch > 1):
        raise DataError(f"normalize= and patch= need the cube of {name!r} in memory; add ?lazy=0 (it has {h * w} pixels of {b} bands)")
    if patch > min(h, w):
        raise DataError(f"patch={patch} is larger than the cube of {name!r} ({h} x {w} pixels); use an odd number up to {min(h, w)}")
    if on_disk and components:
        raise DataError(f"components= needs the cube of {name!r} in memory; add ?lazy=0 (it has {h * w} pixels of {b} bands)")
    record.update(normalize=normalize, patch=patch, window=window, components=components)
    if on_disk:  # one pass over the file: the checks and the band statistics
        disk = DiskArray(cube.values)
        raw = LazyRows(disk)
        moments = band_moments((chunk.numpy() for chunk in raw.split(raw.block_rows)), b)
    else:  # the one float32 copy of the pixels, standardised in place below
        x, scale = front_end(cube.values.reshape(h * w, b).astype(np.float32), (h, w), normalize, patch, name, window,
                             record.get("window_scale"))
        if scale is not None:  # the training scene's scale: predict filters another scene the same way
            record["window_scale"] = scale
        rows = max(1, MOMENT_BYTES // (4 * b))
        moments = band_moments((x[i:i + rows] for i in range(0, len(x), rows)), b)
    if moments.nonfinite_rows:
        raise DataError(f"the cube of {name!r} has NaN or infinite values in {moments.nonfinite_rows} pixels; mask or fill them first")
    if standardize == "band" and "mean" not in record:
        record.update(mean=moments.mean.tolist(), std=np.where(moments.std > 0, moments.std, 1.0).tolist())
    low, high, transform = float(moments.low.min()), float(moments.high.max()), None
    if standardize == "band":
        mean, std = np.asarray(record["mean"]), np.asarray(record["std"])
        low, high = float(((moments.low - mean) / std).min()), float(((moments.high - mean) / std).max())
        if on_disk:
            shift, scale = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
            transform = lambda t: (t - shift) / scale
        else:
            x -= mean.astype(np.float32)
            x /= std.astype(np.float32)
    if components:
        if "axes" not in record:
            center, axes, explained = principal_axes(x, components)
            record.update(center=center.tolist(), axes=axes.tolist(), explained=round(explained, 6))
        axes = np.asarray(record["axes"], dtype=np.float32)
        x = x @ axes.T  # the product first, then the centre's projection: no second full-size copy of the pixels
        x -= np.asarray(record["center"], dtype=np.float32) @ axes.T
        low, high = float(x.min()), float(x.max())
    if on_disk:  # with the pass's findings, so that the dataset's checks do not read the file again
        x = LazyRows(disk, transform=transform, bounds=(low, high), stats=RowStats(0, low, high))
    y, class_names = None, None
    if cube.labels is not None:
        background = _background(options.get("background", record.get("background", "0")))
        y, classes = pixel_labels(cube.labels, background, record.get("classes"))
        record.update(background=background, classes=classes)
        class_names = named_classes(cube.attrs.get("labels", {}), classes, record)
    likelihood = options.get("likelihood") or ("gaussian" if standardize == "band" else None)
    if likelihood is None:
        likelihood = "bernoulli" if low >= 0 and high <= 1 else "gaussian"
    splits = cube_splits(y) if y is not None else stratified_splits(None, len(x))
    geometry = {"shape": (h, w), "y": cube.y, "x": cube.x, "y_dim": cube.y_dim, "x_dim": cube.x_dim, "band": cube.band, "labels": cube.labels,
                "band_dim": cube.band_dim, "attrs": cube.attrs}
    return Dataset(name, x, y, likelihood, splits, class_names=class_names, partly_labeled=True,
                   metadata={"cube": record, "geometry": geometry})


def _patch_option(value) -> int:
    try:
        patch = int(value)
    except (TypeError, ValueError):
        raise DataError(f"patch={value!r} is not a whole number; give the side of the square window in pixels (an odd number, 1 for none)") from None
    if patch < 1 or patch % 2 == 0:
        raise DataError(f"patch={patch} must be an odd number of pixels of at least 1 (a window centred on its pixel), e.g. patch=5")
    return patch


def _components_option(value, bands: int) -> int:
    try:
        components = int(value)
    except (TypeError, ValueError):
        raise DataError(f"components={value!r} is not a whole number; give how many principal axes to keep, e.g. components=30") from None
    if not 0 <= components <= bands:
        raise DataError(f"components={components} must be between 1 and the cube's {bands} bands (0 or absent: every band)")
    return components


def principal_axes(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(center, axes, explained)``: the mean pixel, the ``k`` leading principal axes of the pixels ``x`` (``k x
    bands``, orthonormal rows, each signed so that its largest entry is positive: the same axes on every machine) and
    the share of the total variance they hold.

    A band-reduction front end: the projection keeps distances within the leading axes and drops the directions of
    least variance, which after band standardisation are mostly noise (sensor noise is independent across bands and
    spreads over all axes; what separates materials is correlated across bands and lies in the leading ones). A
    generative model then spends its likelihood on k numbers that carry the signal instead of hundreds of bands that
    mostly carry noise. Covariance summed in float64 a block of pixels at a time."""
    n, b = x.shape
    rows = max(1, MOMENT_BYTES // (4 * b))
    total, cross = np.zeros(b), np.zeros((b, b))
    for i in range(0, n, rows):
        block = x[i:i + rows].astype(np.float64)
        total += block.sum(0)
        cross += block.T @ block
    center = total / n
    covariance = cross / n - np.outer(center, center)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:k]
    axes = vectors[:, order].T
    axes *= np.sign(axes[np.arange(k), np.abs(axes).argmax(1)])[:, None]
    return center, axes, float(values[order].sum() / max(values.sum(), 1e-300))


def front_end(x: np.ndarray, shape: tuple[int, int], normalize: str = "none", patch: int = 1, name: str = "cube", window: str = "mean",
              scale: float | None = None) -> tuple[np.ndarray, float | None]:
    """Pixels ``(h * w, bands)`` as the model reads them, before band standardisation, and the scale of an ``edges``
    window (``None`` for a plain mean): with ``normalize="brightness"``
    each spectrum divided by its mean over the bands (a pixel's overall brightness, which illumination and shade
    scale, is removed; its shape stays), then with ``patch > 1`` each pixel replaced by the mean spectrum of the
    ``patch x patch`` window around it (edges mirrored): neighbours of one field share a class, so averaging cuts
    noise and within-field variation by up to ``patch`` times in standard deviation, at the price of mixing
    pixels at field borders. ``window="edges"`` weighs the window's pixels instead by their likeness to the centre
    pixel (:func:`edge_preserving_mean`, with ``scale`` when given, a run's), which keeps a field's edge."""
    if normalize == "brightness":
        brightness = x.mean(1, keepdims=True)
        dark = int((brightness <= 0).sum())
        if dark:
            raise DataError(f"normalize=brightness needs spectra of positive mean, but {dark} pixels of {name!r} have a mean of 0 or less; "
                            f"mask them or drop ?normalize")
        x = x / brightness
    used = None
    if patch > 1:
        h, w = shape
        if window == "edges":
            x, used = edge_preserving_mean(x.reshape(h, w, -1), patch // 2, scale)
        else:
            from scipy.ndimage import uniform_filter

            x = uniform_filter(x.reshape(h, w, -1), size=(patch, patch, 1), mode="mirror")
        x = x.reshape(h * w, -1)
    return np.ascontiguousarray(x, dtype=np.float32), used


def edge_preserving_mean(x: np.ndarray, radius: int, scale: float | None = None,
                         block_bytes: int = EDGE_BLOCK_BYTES) -> tuple[np.ndarray, float]:
    """``x`` (height, width, bands) with each pixel replaced by the mean of its ``2 radius + 1`` square window (edges
    mirrored), each neighbour weighted by ``exp(-d^2 / (2 s^2))``, ``d^2`` the mean squared band difference to the
    centre pixel (a bilateral filter on spectra, Tomasi and Manduchi 1998). ``s^2`` (``scale``; returned): by default
    the median ``d^2`` between a pixel and its 4 direct neighbours, most of which share its field, so within a field
    the window still averages the noise away while across an edge the weights fall.

    It computes in float64 over blocks of rows of about ``block_bytes`` each, so that a large cube needs one mirrored
    copy in its own dtype and one output (float32 for a float32 cube) besides a block's working arrays; each pixel's
    arithmetic, and so the result, is the same for any block size."""
    h, w, b = x.shape
    pad = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    rows = max(1, block_bytes // (8 * (w + 2 * radius) * b))
    blocks = [(top, min(top + rows, h)) for top in range(0, h, rows)]

    def block(top: int, bottom: int):
        """Rows ``top:bottom`` of ``x`` in float64 and a function that gives them shifted by ``(dy, dx)``."""
        part = pad[top:bottom + 2 * radius].astype(np.float64)
        n = bottom - top
        return part[radius:radius + n, radius:radius + w], lambda dy, dx: part[radius + dy:radius + dy + n, radius + dx:radius + dx + w]

    if scale is None:
        direct = []
        for top, bottom in blocks:
            centre, shifted = block(top, bottom)
            direct += [np.mean((shifted(dy, dx) - centre) ** 2, axis=2).ravel() for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))]
        scale = float(np.median(np.concatenate(direct)))
    s2 = max(scale, 1e-300)
    out = np.empty(x.shape, dtype=np.result_type(x.dtype, np.float32))
    for top, bottom in blocks:
        centre, shifted = block(top, bottom)
        total, weights = np.zeros_like(centre), np.zeros(centre.shape[:2] + (1,))
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                near = shifted(dy, dx)
                weight = np.exp(-np.mean((near - centre) ** 2, axis=2, keepdims=True) / (2 * s2))
                total += weight * near
                weights += weight
        out[top:bottom] = total / weights
    return out, scale


def named_classes(label_attrs: dict, classes: list, record: dict) -> list[str]:
    """The name of each class: from the ground truth's CF attributes ``flag_values``/``flag_meanings`` (then kept in
    the run's ``record`` as ``class_names``), else the names a run recorded, else the ground-truth values."""
    values, meanings = label_attrs.get("flag_values"), label_attrs.get("flag_meanings")
    if values is not None and isinstance(meanings, str):
        named = dict(zip(np.atleast_1d(values).astype(np.int64).tolist(), meanings.split()))
        record["class_names"] = [named.get(c, str(c)) for c in classes]
    names = record.get("class_names")
    return list(names) if isinstance(names, list) and len(names) == len(classes) else [str(c) for c in classes]


@dataclass
class BandMoments:
    """What one pass over a cube's pixels found: pixels with NaN or infinite values and, over the finite ones, each
    band's mean, standard deviation (divided by N), minimum and maximum."""

    nonfinite_rows: int
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> "BandMoments":
        """The moments of pixels ``(N, bands)`` in memory."""
        finite = np.isfinite(x).all(1)
        bad = int((~finite).sum())
        if bad:
            x = x[finite]
        if not len(x):
            nan = np.full(x.shape[1], np.nan)
            return cls(bad, nan, nan, nan, nan)
        return cls(bad, x.mean(0, dtype=np.float64), x.std(0, dtype=np.float64), x.min(0).astype(np.float64), x.max(0).astype(np.float64))


def band_moments(chunks: Iterable[np.ndarray], bands: int) -> BandMoments:
    """:class:`BandMoments` of pixels that come a block ``(n, bands)`` at a time (from disk, or slices of an array in
    memory, so that no float64 copy of the cube is made): the blocks' means and centred sums of squares are merged as
    Chan et al. do (numerically as good as one pass over all the pixels in float64)."""
    count, bad, mean, m2 = 0, 0, 0.0, 0.0
    low, high = np.full(bands, np.inf), np.full(bands, -np.inf)
    for chunk in chunks:
        part = BandMoments.of(chunk)
        bad += part.nonfinite_rows
        n = len(chunk) - part.nonfinite_rows
        if n == 0:
            continue
        delta, total = part.mean - mean, count + n
        mean = mean + delta * n / total
        m2 = m2 + part.std ** 2 * n + delta ** 2 * count * n / total
        count = total
        low, high = np.minimum(low, part.low), np.maximum(high, part.high)
    if count == 0:
        nan = np.full(bands, np.nan)
        return BandMoments(bad, nan, nan, nan, nan)
    return BandMoments(bad, np.asarray(mean), np.sqrt(m2 / count), low, high)


def _background(value) -> int | None:
    if value is None or str(value).lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise DataError(f"background={value!r} is not a whole number; give the ground-truth value of unlabeled pixels, or none") from None


def open_cube(spec: str, record: dict | None = None, data_dir: str | None = None, download: bool = False) -> Dataset:
    """The dataset of an image-cube spec (``cube:``, ``mat:``, a public scene), transformed as ``record`` (a run's
    ``data.cube`` entry) says when given, else by its own statistics."""
    dataset = open_source(spec, data_dir=data_dir, download=download, extra={RECORD: record} if record else None)
    if "geometry" not in dataset.metadata:
        raise DataError(f"{spec!r} is not an image cube; give cube:PATH (netCDF), mat:PATH (MATLAB) or a public scene such as indian_pines")
    return dataset


@register_source("cube", options=CUBE_OPTIONS)
def _cube(path: str, options: dict, **_) -> Dataset:
    """A netCDF (or zarr) cube with dims (y, x, band) or (band, y, x) and its ground-truth map."""
    p = Path(path).expanduser() if path and Path(path).expanduser().is_dir() else _existing(path)  # zarr stores are folders
    lazy = _lazy_option(options) if "lazy" in options else None  # by default, by the cube's size
    return cube_dataset(read_xarray(p, options.get("var"), options.get("labels"), lazy), p.stem, options)


@register_source("mat", options=CUBE_OPTIONS)
def _mat(path: str, options: dict, **_) -> Dataset:
    """A MATLAB cube (rows, columns, bands) and its ground-truth map (v5 or v7.3), the map from ``gt=PATH`` if given."""
    p = _existing(path)
    gt = _existing(options["gt"]) if options.get("gt") else None
    return cube_dataset(read_mat(p, options.get("x"), options.get("y"), gt), p.stem, options)


def to_xarray(dataset: Dataset, variables: dict[str, tuple[np.ndarray, tuple[str, ...]]], coords: dict | None = None):
    """Per-pixel arrays ``(N, ...)`` named with their extra dims, as an ``xarray.Dataset`` over the cube's y/x
    coordinates (the ground-truth map added as ``labels``)."""
    import xarray as xr

    geometry = dataset.metadata.get("geometry")
    if geometry is None:
        raise DataError(f"data {dataset.spec or dataset.name!r} is not an image cube; give cube:PATH (netCDF) or mat:PATH (MATLAB)")
    (h, w), spatial = geometry["shape"], (geometry["y_dim"], geometry["x_dim"])
    data_vars = {name: ((*spatial, *dims), np.asarray(values).reshape(h, w, *np.shape(values)[1:])) for name, (values, dims) in variables.items()}
    if geometry["labels"] is not None:
        data_vars["labels"] = (spatial, np.asarray(geometry["labels"]))
    attrs, band = geometry.get("attrs", {}), geometry.get("band_dim", "band")  # a cube's own coordinates, units and all
    axes = {spatial[0]: geometry["y"], spatial[1]: geometry["x"], band: geometry["band"]}
    axes = {dim: (dim, np.asarray(values), attrs.get(dim, {})) for dim, values in axes.items()}
    return xr.Dataset(data_vars, coords={**axes, **(coords or {})}, attrs={"source": dataset.spec})


def write_netcdf(ds, path) -> None:
    """Write an ``xarray.Dataset`` atomically (h5netcdf)."""
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))
