"""MNIST from the original IDX files: found on disk or downloaded with checksum checks, then cached."""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import DataError, DataNotFoundError

FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def cache_dir() -> Path:
    """The user cache folder for downloaded data (``$XDG_CACHE_HOME/ppmodels`` or ``~/.cache/ppmodels``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ppmodels"


def search_dirs(data_dir: str | Path | None, sub: str = "mnist") -> list[Path]:
    """Where data files are looked for, in order: ``data_dir``, ``$PPMODELS_DATA``, the user cache (each also with
    ``/sub``: ``mnist`` for MNIST, ``hyperspectral`` for the public scenes)."""
    roots = [Path(p) for p in (data_dir, os.environ.get("PPMODELS_DATA")) if p] + [cache_dir()]
    return [d for root in roots for d in (root, root / sub)]


def find_or_download(data_dir: str | Path | None = None, download: bool = False) -> Path:
    """The folder that holds all four MNIST files; downloads them into the cache when ``download`` is set."""
    dirs = search_dirs(data_dir)
    for d in dirs:
        if all((d / f).is_file() for f in FILES):
            return d
    if not download:
        looked = ", ".join(str(d) for d in dirs)
        raise DataNotFoundError(f"MNIST files ({', '.join(FILES)}) not found in {looked}; pass --data-dir DIR, set PPMODELS_DATA, or add --download")
    target = cache_dir() / "mnist"
    target.mkdir(parents=True, exist_ok=True)
    for name, sha in FILES.items():
        if not (target / name).is_file():
            _download(name, sha, target)
    return target


def _download(name: str, sha256: str, target: Path) -> None:
    download_checked([mirror + name for mirror in MIRRORS], sha256, target / name)


def download_checked(urls: list[str], sha256: str, dest: Path, size: int | None = None) -> None:
    """Download ``dest`` from the first of ``urls`` whose payload has the ``size`` (when known) and the ``sha256``."""
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
        except OSError as exc:
            errors.append(f"{url}: {exc}")
            continue
        if size is not None and len(payload) != size:
            errors.append(f"{url}: {len(payload)} bytes, expected {size}")
            continue
        if hashlib.sha256(payload).hexdigest() != sha256:
            errors.append(f"{url}: checksum mismatch")
            continue
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(payload)
        os.replace(tmp, dest)
        return
    raise DataNotFoundError(f"could not download {dest.name} ({'; '.join(errors)}); place the file in {dest.parent} by hand")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip) as a uint8 array: 16-byte header for images, 8-byte header for labels."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable gzip IDX file ({exc}); delete it and download it again") from None
    magic = int.from_bytes(raw[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise DataError(f"{path} is not an MNIST IDX file (magic number {magic:#x}); check the file")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({len(raw) - offset} of {int(np.prod(dims))} bytes); delete it and download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def load_arrays(data_dir: str | Path | None = None, download: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: images ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8."""
    d = find_or_download(data_dir, download)
    return tuple(read_idx(d / f) for f in FILES)  # type: ignore[return-value]
