"""The public hyperspectral scenes (Grupo de Inteligencia Computacional, UPV/EHU) as data specs, found on disk or
downloaded with size and sha256 checks, then cached like MNIST.

Specs: ``indian_pines``, ``salinas``, ``salinas_a``, ``pavia_u``, ``ksc``, with the options of ``mat:`` (``background``,
``bands``, ``standardize``, ``likelihood``; see :mod:`ppmodels.data.cubes`). Files are looked for in ``--data-dir``,
``$PPMODELS_DATA`` and the user cache (each also with ``/hyperspectral``); ``--download`` fetches the missing ones into
``~/.cache/ppmodels/hyperspectral``. Only files with a known checksum are downloaded: the ground-truth maps of Salinas,
Pavia University and KSC have none recorded here, so place those by hand.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataNotFoundError
from .cubes import CUBE_OPTIONS, cube_dataset, read_mat
from .dataset import Dataset
from .mnist import cache_dir, download_checked, search_dirs
from .sources import register_source

BASE = "https://www.ehu.eus/ccwintco/uploads/"
#: file name -> (URL, sha256, size in bytes); ``None``: no checksum is recorded, the file is never downloaded
FILES: dict[str, tuple[str, str | None, int | None]] = {
    "Indian_pines_corrected.mat": (BASE + "6/67/Indian_pines_corrected.mat", "ec2f8808710919d566f70f0d4aa885aae1ddfd42b734aba71c5e12ca65450939", 5_953_527),
    "Indian_pines_gt.mat": (BASE + "c/c4/Indian_pines_gt.mat", "65c4687a8ab04f6da4789799bc3bc4f6e88bccac3ed6a2e6ae367e5e6b9e429c", 1_125),
    "Salinas_corrected.mat": (BASE + "a/a3/Salinas_corrected.mat", "5ec1c0d22f56d18ecd336f8e35735863c0f160682e04e0c18ef3f89a3334d87d", 26_552_770),
    "SalinasA_corrected.mat": (BASE + "d/df/SalinasA_corrected.mat", "d75684ed3ab71a1024cee0f9db9061f50a3523a92ff5edfbbb1eed976b9f1721", 1_539_086),
    "PaviaU.mat": (BASE + "e/ee/PaviaU.mat", "28447fa87f7a5797845e9a189c0da85e23b1d06a4ba7361e5ff44efbf834d2fb", 34_806_917),
    "KSC.mat": (BASE + "2/26/KSC.mat", "b1ad011cfdb65c853e4f9f6108ca4774467d87f90a5c23b74ff3a2984a3b4786", 56_824_624),
    "Salinas_gt.mat": (BASE + "f/fa/Salinas_gt.mat", None, None),
    "SalinasA_gt.mat": (BASE + "a/aa/SalinasA_gt.mat", None, None),
    "PaviaU_gt.mat": (BASE + "5/50/PaviaU_gt.mat", None, None),
    "KSC_gt.mat": (BASE + "a/a6/KSC_gt.mat", None, None),
}
#: spec -> (cube file, ground-truth file)
SCENES = {
    "indian_pines": ("Indian_pines_corrected.mat", "Indian_pines_gt.mat"),
    "salinas": ("Salinas_corrected.mat", "Salinas_gt.mat"),
    "salinas_a": ("SalinasA_corrected.mat", "SalinasA_gt.mat"),
    "pavia_u": ("PaviaU.mat", "PaviaU_gt.mat"),
    "ksc": ("KSC.mat", "KSC_gt.mat"),
}
SUBDIR = "hyperspectral"


def find_or_download(name: str, data_dir: str | Path | None = None, download: bool = False) -> Path:
    """The path of scene file ``name``: found in the search folders, else downloaded (checked) into the cache."""
    dirs = search_dirs(data_dir, SUBDIR)
    for d in dirs:
        if (d / name).is_file():
            return d / name
    url, sha256, size = FILES[name]
    if not download:
        looked = ", ".join(str(d) for d in dirs)
        raise DataNotFoundError(f"{name} not found in {looked}; pass --data-dir DIR, set PPMODELS_DATA, or add --download")
    target = cache_dir() / SUBDIR
    if sha256 is None:
        raise DataNotFoundError(f"{name} has no recorded checksum, so ppmodels does not download it; fetch {url} and place it in {target} by hand")
    target.mkdir(parents=True, exist_ok=True)
    download_checked([url], sha256, target / name, size)
    return target / name


def _scene_loader(scene: str):
    cube_file, gt_file = SCENES[scene]

    def load(path: str, options: dict, data_dir: str | None = None, download: bool = False) -> Dataset:
        found = [find_or_download(f, path or data_dir, download) for f in (cube_file, gt_file)]
        return cube_dataset(read_mat(found[0], options.get("x"), options.get("y"), found[1]), scene, options)

    load.__doc__ = f"The public scene {cube_file} with its ground truth {gt_file} (background 0 unlabeled)."
    return load


for _scene in SCENES:
    register_source(_scene, bare=True, options=CUBE_OPTIONS)(_scene_loader(_scene))
