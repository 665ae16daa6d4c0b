"""What a run's numbers depend on besides its config: library versions, and the memory it took."""

from __future__ import annotations

import platform
import resource
import sys

import numpy as np
import torch


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
