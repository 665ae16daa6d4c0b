"""Data sources by spec: ``digits``, ``mnist``, ``npz:PATH``, ``npy:PATH``, ``csv:PATH``, ``h5:PATH``, ``zarr:PATH``.

A spec is ``KIND`` or ``KIND:PATH``, optionally followed by ``?key=value&key=value`` options, e.g.
``csv:cells.csv?label=type`` or ``npz:cubes.npz?x=pixels&y=classes``. A bare path ending in ``.npz``,
``.npy``, ``.csv``, ``.h5``, ``.hdf5`` or ``.zarr`` is read by its suffix. More sources register with
:func:`register_source`.

``npy:`` (memory-mapped), ``h5:`` and ``zarr:`` leave the examples on disk (:mod:`ppmodels.data.lazy`): they are
read a block at a time, so data larger than memory trains; ``?lazy=0`` reads them into memory instead.

Each source declares the options it takes when it registers (:func:`source_options`); :func:`parse_spec` refuses any
other in one line, so that a misspelt option (``?test_label=0.2``) does not leave the run reading other data.
"""

from __future__ import annotations

import difflib
import tokenize
import zipfile
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import parse_qsl

import numpy as np

from ..errors import DataError, DataNotFoundError
from .mnist import load_arrays as load_mnist_arrays
from .dataset import UNLABELED, Dataset, check_labels, in_unit_interval
from .lazy import DiskArray, LazyRows, memmap_release
from .splits import partial_splits, stratified_splits, test_labels_share

Loader = Callable[..., Dataset]
_SOURCES: dict[str, Loader] = {}
_OPTIONS: dict[str, frozenset[str] | None] = {}  # kind -> the options its specs may carry (None: not declared, not checked)
_BARE = {"digits", "mnist"}  # kinds named without a path (built-in or downloaded data)
_SUFFIXES = {".npz": "npz", ".npy": "npy", ".csv": "csv", ".h5": "h5", ".hdf5": "h5", ".zarr": "zarr", ".nc": "cube", ".mat": "mat"}  # cubes: data/cubes.py


#: the options of every file source (docs/data.md): the likelihood hint, and the labels of a partly labeled file
FILE_OPTIONS = frozenset({"likelihood", "classes", "unlabeled", "test_labels"})


def register_source(kind: str, bare: bool = False, options: Iterable[str] | None = None) -> Callable[[Loader], Loader]:
    """Register ``loader(path, options, data_dir=..., download=...) -> Dataset`` for specs ``KIND[:PATH]``
    (``bare``: a kind usually named without a path, such as ``mnist``). ``options``: the ``?key=value`` options its
    specs may carry, any other refused by :func:`parse_spec` (``None``: the loader checks its own)."""

    def decorator(fn: Loader) -> Loader:
        _SOURCES[kind] = fn
        _OPTIONS[kind] = None if options is None else frozenset(options)
        if bare:
            _BARE.add(kind)
        return fn

    return decorator


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``(kind, path, options)`` of a data spec; an option given twice, or one its source does not take, is refused."""
    if spec is not None and not isinstance(spec, str):
        raise DataError(f"the data must be a spec such as 'digits' or 'npz:PATH', got {type(spec).__name__}; "
                        f"save arrays with np.savez('data.npz', x=x, y=y) and pass 'npz:data.npz'")
    if not spec or not spec.strip():
        raise DataError("empty data spec; use digits, mnist, npz:PATH, npy:PATH, csv:PATH, h5:PATH or zarr:PATH")
    body, _, query = spec.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    options = dict(pairs)
    kind, sep, path = body.partition(":")
    if not (sep and kind in _SOURCES):
        if body in _SOURCES:
            kind, path = body, ""
        elif Path(body).suffix.lower() in _SUFFIXES:
            kind, path = _SUFFIXES[Path(body).suffix.lower()], body
        else:
            raise DataError(f"unknown data spec {spec!r}; use one of {', '.join(known_kinds())}, or a path ending in {', '.join(_SUFFIXES)}")
    if len(options) < len(pairs):
        twice = sorted({k for k, _ in pairs if sum(key == k for key, _ in pairs) > 1})
        raise DataError(f"option {', '.join(twice)} is given twice in the data spec {spec!r}; give each option once")
    check_options(kind, options)
    return kind, path, options


def known_kinds() -> list[str]:
    return [_kind_name(k) for k in _SOURCES]


def _kind_name(kind: str) -> str:
    return kind if kind in _BARE else f"{kind}:PATH"


def source_options(kind: str) -> frozenset[str] | None:
    """The options that specs of source ``kind`` may carry (``None``: its loader checks its own)."""
    if kind not in _OPTIONS:
        raise DataError(f"unknown data source {kind!r}; use one of {', '.join(_OPTIONS)}")
    return _OPTIONS[kind]


def check_options(kind: str, options: dict) -> None:
    """Refuse, in one line, an option that source ``kind`` does not take: ignored, a misspelt one would leave the
    run reading other data than the user asked for (``?test_label=0.2``: every label trains, none tests)."""
    accepted = _OPTIONS.get(kind)
    unknown = [key for key in options if accepted is not None and key not in accepted]
    if not unknown:
        return
    close = [match for key in unknown for match in difflib.get_close_matches(key, sorted(accepted), n=1)]
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    takes = f"takes {', '.join(sorted(accepted))}" if accepted else "takes no options"
    named = ", ".join(f"?{key}" for key in unknown)
    raise DataError(f"unknown option{'s' if len(unknown) > 1 else ''} {named} for {_kind_name(kind)}{hint}; {_kind_name(kind)} {takes}")


def open_source(spec: str, data_dir: str | None = None, download: bool = False, extra: dict | None = None) -> Dataset:
    """The dataset of ``spec``; ``extra`` adds options a spec cannot spell (an image cube's recorded transform)."""
    kind, path, options = parse_spec(spec)
    dataset = _SOURCES[kind](path, {**options, **(extra or {})}, data_dir=data_dir, download=download)
    dataset.spec = spec
    return dataset


def _existing(path: str) -> Path:
    if not path:
        raise DataError("the data spec names no file; write it as KIND:PATH, e.g. npz:data/cells.npz")
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataNotFoundError(f"data file {p} does not exist; check the path")
    if p.stat().st_size == 0:
        raise DataError(f"data file {p} is empty; give a file with data")
    return p


def from_arrays(name: str, x: np.ndarray, y: np.ndarray | None = None, likelihood: str | None = None,
                class_names: list[str] | None = None, splits: dict | None = None, seed: int = 0, options: dict | None = None) -> Dataset:
    """A :class:`Dataset` from arrays: likelihood guessed from the value range, fixed stratified 70/10/20 splits.

    Labels may leave rows unlabeled (-1, NaN, a blank text label or ``options["unlabeled"]``): the file is then
    partly labeled and split by :func:`~ppmodels.data.splits.partial_splits` (:func:`split_rows`).
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"data {name!r} has non-numeric values (dtype {x.dtype}); give numbers only")
    if x.dtype == np.uint8:
        x = x / 255.0  # 8-bit images
    x = x.astype(np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) images get one channel
    if y is not None:
        y, class_names = _labels_as_classes(name, np.asarray(y), len(x), class_names, options or {})
    if likelihood is None:
        likelihood = "bernoulli" if np.isfinite(x).all() and in_unit_interval(x) else "gaussian"
    partly = y is not None and bool((y == UNLABELED).any())
    metadata = {}
    if splits is None:
        splits, metadata = split_rows(name, y, len(x), options or {}, seed)
    return Dataset(name, x, y, likelihood, splits, class_names=class_names, partly_labeled=partly, metadata=metadata)


def split_rows(name: str, y: np.ndarray | None, n: int, options: dict, seed: int = 0) -> tuple[dict, dict]:
    """``(splits, metadata)``: a partly labeled file's by :func:`~ppmodels.data.splits.partial_splits` (every given
    label trains unless ``?test_labels=SHARE`` sends a share of each class's to test; the share is recorded as
    ``metadata["test_labels"]``), else fixed stratified 70/10/20 splits."""
    share = test_labels_share(options.get("test_labels"))
    if y is not None and bool((y == UNLABELED).any()):
        share = share or 0.0
        return partial_splits(y, test_labels=share, seed=seed), {"test_labels": share}
    if share is not None:
        what = "labels every row" if y is not None else "has no labels"
        raise DataError(f"?test_labels applies to a partly labeled file, but {name!r} {what}, so its test split is a fifth of its rows; drop the option")
    return stratified_splits(y, n, seed=seed), {}


def _labels_as_classes(name: str, y: np.ndarray, n: int, class_names: list[str] | None, options: dict | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels 0..K-1 (``UNLABELED`` for a row without one: -1, NaN, a blank text cell or the text
    ``options["unlabeled"]``), checked before they are used to split; text labels become named classes, in
    the order of ``options["classes"]`` (comma-separated) when given, else sorted."""
    options = options or {}
    if y.dtype.kind == "S":
        y = y.astype(str)
    if y.dtype.kind == "f" and y.shape == (n,) and np.isnan(y).any():
        y = np.where(np.isnan(y), UNLABELED, y)
    if y.dtype.kind in "fiub":
        y = check_labels(y, n, name, allow_unlabeled=True)
        _check_labeled(name, y)
        classes = options.get("classes")
        if classes is not None:
            if not classes.isdigit() or int(classes) < 1:
                raise DataError(f"?classes={classes} should be the number of classes for integer labels (e.g. ?classes=10), or class names for text labels")
            if y.max() >= int(classes):
                raise DataError(f"labels of {name!r} include {int(y.max())}, outside the {classes} classes 0..{int(classes) - 1} that ?classes= names; fix the labels")
        return y, class_names
    if y.dtype.kind != "U":
        raise DataError(f"labels of {name!r} have type {y.dtype}; give integer class labels 0..K-1 or text class names")
    if y.shape != (n,):
        raise DataError(f"labels of {name!r} have shape {y.shape}; expected ({n},), one label per example")
    text = np.char.strip(y)
    blank = (text == "") | (text == options.get("unlabeled", ""))
    if (~blank).any() and _all_numbers(text[~blank]):
        # sorting "10" before "2" would silently renumber the classes, so numbers stored as text are refused
        raise DataError(f"labels of {name!r} are numbers stored as text (e.g. {str(text[~blank][0])!r}); store them as integers 0..K-1")
    given = options.get("classes")
    names = [c.strip() for c in given.split(",")] if given else sorted(set(text[~blank].tolist()))
    outside = sorted(set(text[~blank].tolist()) - set(names))
    if outside:
        raise DataError(f"labels of {name!r} include {', '.join(map(repr, outside[:5]))}, not among the classes {', '.join(names)} that ?classes= names; "
                        f"fix the labels or add the class")
    index = {c: i for i, c in enumerate(names)}
    y = np.array([UNLABELED if b else index[t] for t, b in zip(text.tolist(), blank)], dtype=np.int64)
    _check_labeled(name, y)
    return y, names


def _check_labeled(name: str, y: np.ndarray) -> None:
    check_labels(y, len(y), name, allow_unlabeled=True)  # not every row unlabeled, codes not far beyond the classes


def _all_numbers(text: np.ndarray) -> bool:
    try:
        text.astype(np.float64)
    except ValueError:
        return False
    return True


@register_source("digits", options={"likelihood"})
def _digits(path: str, options: dict, **_) -> Dataset:
    """scikit-learn's handwritten digits: 1797 8x8 images of grey levels 0..16, scaled to [0, 1] (so the likelihood
    hint is ``binomial:16``, each pixel a count of 16, unless ``?likelihood=`` names another), fixed stratified splits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return from_arrays("digits", x, bunch.target, likelihood=options.get("likelihood") or "binomial:16", splits=stratified_splits(bunch.target, len(x), seed=0))


@register_source("mnist", options={"likelihood"})
def _mnist(path: str, options: dict, data_dir: str | None = None, download: bool = False) -> Dataset:
    """MNIST: the first 50,000 training images train, the last 10,000 validate, the 10,000 test images test (likelihood
    hint ``bernoulli`` unless ``?likelihood=`` names another)."""
    x_train, y_train, x_test, y_test = load_mnist_arrays(path or data_dir, download)
    x = np.concatenate([x_train, x_test])[:, None].astype(np.float32) / 255.0
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    splits = {"train": np.arange(50_000), "valid": np.arange(50_000, 60_000), "test": np.arange(60_000, 70_000)}
    return Dataset("mnist", x, y, options.get("likelihood") or "bernoulli", splits)


def _unreadable(p: Path, kind: str, exc: Exception) -> DataError:
    if "allow_pickle" in str(exc):  # object arrays are pickles, and unpickling a stranger's file can run code
        return DataError(f"{p} holds Python objects (pickled), which ppmodels never loads because they can run code; save plain numeric arrays")
    reason = " ".join(str(exc).split())[:200]
    return DataError(f"{p} is not a readable .{kind} file ({type(exc).__name__}: {reason}); it is truncated or corrupt, check the file")


@register_source("npz", options=FILE_OPTIONS | {"x", "y"})
def _npz(path: str, options: dict, **_) -> Dataset:
    p = _existing(path)
    x_key, y_key = options.get("x", "x"), options.get("y", "y")
    try:
        # our own handle: np.load leaks the file it opened when the archive is unreadable (ResourceWarning)
        with open(p, "rb") as handle, np.load(handle, allow_pickle=False) as f:
            if x_key not in f:
                raise DataError(f"{p} has no array {x_key!r} (it has {', '.join(f.files) or 'none'}); name it with ?x=KEY")
            x = f[x_key]
            y = f[y_key] if y_key in f else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataError):
            raise
        raise _unreadable(p, "npz", exc) from None
    return from_arrays(p.stem, x, y, likelihood=options.get("likelihood"), options=options)


@register_source("npy", options=FILE_OPTIONS | {"lazy", "labels"})
def _npy(path: str, options: dict, **_) -> Dataset:
    """One array, memory-mapped (``?lazy=0``: read into memory); ``?labels=Y.npy`` names a file of labels, one a row
    (-1 or NaN where a row has none)."""
    p = _existing(path)
    lazy = _lazy_option(options)
    x = _load_npy(p, mmap_mode="r" if lazy else None)
    y = _npy_labels(p, options.get("labels"))
    if lazy:
        return from_disk(p.stem, DiskArray(x, memmap_release(x)), y, likelihood=options.get("likelihood"), options=options)
    return from_arrays(p.stem, x, y, likelihood=options.get("likelihood"), options=options)


def _npy_labels(p: Path, labels: str | None) -> np.ndarray | None:
    """The labels of ``npy:X.npy?labels=Y.npy`` (Y's path as given, else beside X), one a row, -1 or NaN for none."""
    if labels is None:
        return None
    path = Path(labels).expanduser()
    if not path.is_file() and (p.parent / labels).is_file():
        path = p.parent / labels
    return _load_npy(_existing(str(path)))


def _load_npy(p: Path, mmap_mode: str | None = None) -> np.ndarray:
    """The array of an ``.npy`` file; one :class:`DataError` line for a file that is not one (a damaged header, whose
    dict numpy parses as Python: SyntaxError or TokenError; an ``.npz`` archive under an ``.npy`` name)."""
    try:
        x = np.load(p, allow_pickle=False, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        if "Python objects" in str(exc):  # what a memory map of an object array says instead of allow_pickle
            exc = ValueError("allow_pickle")
        raise _unreadable(p, "npy", exc) from None
    if isinstance(x, np.lib.npyio.NpzFile):
        x.close()
        raise DataError(f"{p} is an .npz archive, not an .npy array; open it as npz:{p}")
    return x


@register_source("csv", options=FILE_OPTIONS | {"label"})
def _csv(path: str, options: dict, **_) -> Dataset:
    """Numeric columns with a header row; ``?label=COLUMN`` names the label column."""
    p = _existing(path)
    with open(p, newline="") as f:
        header = f.readline().strip().split(",")
    if header == [""]:  # genfromtxt would fail on it with an IndexError
        raise DataError(f"{p} has no header row (its first line is blank); give comma-separated columns under a header row of names")
    label = options.get("label")
    if label is not None and label not in header:
        raise DataError(f"{p} has no column {label!r} (columns: {', '.join(header)}); fix ?label=COLUMN")
    try:
        token = options.get("unlabeled")  # a label cell holding it is masked, as an empty one is
        missing = {header.index(label): ["", token]} if token is not None and label is not None else None
        table = np.genfromtxt(p, delimiter=",", names=True, dtype=None, encoding="utf-8", usemask=True, missing_values=missing)
    except UnicodeDecodeError:
        raise DataError(f"{p} is not a UTF-8 text CSV file; check the file") from None
    except ValueError as exc:  # rows with the wrong number of columns: a truncated or hand-edited file
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])
        raise DataError(f"{p} has rows with the wrong number of columns ({detail}); it is truncated or malformed, fix those rows") from None
    if table.size == 0:
        raise DataError(f"{p} has a header but no rows; give a file with data")
    table = np.ma.atleast_1d(table)
    names = table.dtype.names
    # genfromtxt would fill empty cells with -1 or NaN, a silent wrong answer for a file cut short mid-row
    # (an empty label cell is a row without a label: a partly labeled file)
    filled = [n for n, h in zip(names, header) if h != label]
    empty = [h for n, h in zip(names, header) if h != label and np.ma.getmaskarray(table[n]).any()]
    if empty:
        rows = np.flatnonzero(np.any([np.ma.getmaskarray(table[n]) for n in filled], axis=0)) + 2
        raise DataError(f"{p} has empty cells in column(s) {', '.join(empty)} (line {rows[0]}); the file is truncated or incomplete, fill them in or drop those rows")
    y = _csv_labels(table[names[header.index(label)]], options.get("unlabeled")) if label is not None else None
    table = table.data
    features = [n for n, h in zip(names, header) if h != label]
    text = [h for n, h in zip(names, header) if h != label and table.dtype[n].kind not in "fiub"]
    if text and len(header) == 1 and ";" in header[0]:
        raise DataError(f"{p} looks separated by semicolons (its header is the one column {header[0]!r}); save it comma-separated")
    if text:
        raise DataError(f"{p} has text in numeric column(s) {', '.join(text)}; fix the values or name the label column with ?label=COLUMN")
    x = np.stack([table[n].astype(np.float32) for n in features], axis=1)
    return from_arrays(p.stem, x, y, likelihood=options.get("likelihood"), options=options)


def _csv_labels(column: np.ma.MaskedArray, token: str | None) -> np.ndarray:
    """A csv label column with its empty cells (and cells holding ``?unlabeled=TOKEN``) as rows without a label:
    numbers (NaN where unlabeled) when every other cell is a number, else text (blank where unlabeled)."""
    text = np.char.strip(column.data.astype(str))
    blank = np.ma.getmaskarray(column) | (text == "") | (token is not None and text == token.strip())
    if _all_numbers(text[~blank]):
        numbers = np.full(len(text), np.nan)
        numbers[~blank] = text[~blank].astype(np.float64)
        return numbers
    return np.where(blank, "", text)


@register_source("h5", options=FILE_OPTIONS | {"x", "y", "lazy"})
def _h5(path: str, options: dict, **_) -> Dataset:
    """HDF5 datasets ``?x=KEY`` (default ``x``) and ``?y=KEY`` (default ``y``, optional); x is read lazily from the
    open file (``?lazy=0``: into memory), the labels into memory."""
    import h5py

    p = _existing(path)
    x_key, y_key = options.get("x", "x"), options.get("y", "y")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataError(f"{p} is not a readable HDF5 file ({exc}); check the file") from None
    if not isinstance(f.get(x_key), h5py.Dataset):
        keys = ", ".join(f.keys()) or "none"
        f.close()
        raise DataError(f"{p} has no dataset {x_key!r} (it has {keys}); name it with ?x=KEY")
    y = f[y_key][()] if y_key in f else None
    if not _lazy_option(options):
        with f:
            x = f[x_key][()]
        return from_arrays(p.stem, x, y, likelihood=options.get("likelihood"), options=options)
    return from_disk(p.stem, DiskArray(f[x_key]), y, likelihood=options.get("likelihood"), options=options)  # the dataset keeps the file open


def _lazy_option(options: dict) -> bool:
    value = options.get("lazy", "1").lower()
    if value not in ("0", "1", "true", "false"):
        raise DataError(f"?lazy={value} is not a choice; use ?lazy=1 (read from disk a block at a time) or ?lazy=0 (read into memory)")
    return value in ("1", "true")


def from_disk(name: str, disk: DiskArray, y: np.ndarray | None = None, likelihood: str | None = None, seed: int = 0,
              options: dict | None = None) -> Dataset:
    """A :class:`Dataset` whose examples stay on disk: the likelihood guessed and the values checked in one pass over
    the rows, fixed stratified 70/10/20 splits as index arrays (as :func:`from_arrays`, nothing held in memory but y)."""
    if disk.dtype.kind not in "fiub":
        raise DataError(f"data {name!r} has non-numeric values (dtype {disk.dtype}); give numbers only")
    if len(disk.shape) not in (1, 2, 3, 4) or disk.shape[0] == 0:
        raise DataError(f"data {name!r} has shape {disk.shape}; expected at least one example (N, N x D, N x H x W or N x C x H x W)")
    x = LazyRows(disk)
    class_names = None
    if y is not None:
        y, class_names = _labels_as_classes(name, np.asarray(y), len(x), class_names, options)
    stats = x.stats()
    if stats.nonfinite_rows == 0:
        x.bounds = (stats.low, stats.high)
    if likelihood is None:
        likelihood = "bernoulli" if stats.nonfinite_rows == 0 and in_unit_interval(x) else "gaussian"
    partly = y is not None and bool((y == UNLABELED).any())
    splits, metadata = split_rows(name, y, len(x), options or {}, seed)
    return Dataset(name, x, y, likelihood, splits, class_names=class_names, partly_labeled=partly, metadata=metadata)


@register_source("zarr", options=FILE_OPTIONS | {"x", "y", "lazy"})
def _zarr(path: str, options: dict, **_) -> Dataset:
    """A zarr store (a folder): its root array, or the arrays ``?x=KEY`` (default ``x``) and
    ``?y=KEY`` (default ``y``, optional) of its root group; x is read lazily (``?lazy=0``: into memory)."""
    import zarr

    if not path:
        raise DataError("the data spec names no zarr store; write it as zarr:PATH, e.g. zarr:data/cells.zarr")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"zarr store {p} does not exist; check the path")
    try:
        root = zarr.open(str(p), mode="r")
    except Exception as exc:  # zarr raises its own errors, and ValueError/KeyError, for folders that are not stores
        raise DataError(f"{p} is not a readable zarr store ({type(exc).__name__}: {exc}); check the path") from None
    x_key, y_key = options.get("x", "x"), options.get("y", "y")
    if isinstance(root, zarr.Array):
        x, y = root, None
    else:
        names = sorted(root.array_keys())
        if x_key not in names:
            raise DataError(f"{p} has no array {x_key!r} (it has {', '.join(names) or 'none'}); name it with ?x=KEY")
        x, y = root[x_key], root[y_key][...] if y_key in names else None
    if not _lazy_option(options):
        return from_arrays(p.stem, x[...], y, likelihood=options.get("likelihood"), options=options)
    return from_disk(p.stem, DiskArray(x), y, likelihood=options.get("likelihood"), options=options)
