"""What a run's numbers depend on besides its config: library versions, and the memory it took (and can take)."""

from __future__ import annotations

import os
import platform
import resource
import sys

import numpy as np
import torch

from ..errors import ConfigError


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide a run's numbers (recorded in ``summary.json``)."""
    import arviz
    import pyro
    import sklearn

    from ..version import __version__

    return {"python": platform.python_version(), "ppmodels": __version__, "torch": torch.__version__, "pyro": pyro.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "arviz": arviz.__version__}


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (``MemAvailable``), or ``None`` where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: int, what: str, fix: str) -> None:
    """Refuse, before allocating, a request that needs more memory than the machine has available."""
    free = available_memory()
    if free is not None and needed > free:
        raise ConfigError(f"{what} need about {needed / 2**30:.1f} GiB of memory but {free / 2**30:.1f} GiB is available; {fix}")
