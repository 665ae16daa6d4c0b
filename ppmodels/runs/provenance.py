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


def check_model_memory(cls, config, fix: str = "choose smaller layer sizes (--hidden) or latent sizes (--z-dim)") -> None:
    """Refuse, before any weight is allocated, a model whose weights, gradients and Adam state would not fit in memory:
    the model is built on torch's ``meta`` device (shapes only, no memory), its weights counted. A model that cannot be
    built there is left to its own constructor."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = cls(config)
        numel = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    except (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError):
        return
    check_memory(numel * 4 * 4, f"a {getattr(cls, 'name', cls.__name__)} model of {numel:,} weights (with gradients and optimizer state)", fix)


def check_particles_memory(x_shape, particles: int, rows: int, what: str, fix: str) -> None:
    """Refuse ``particles`` importance samples or draws for ``rows`` data at once when they would not fit in memory
    (a few float32 copies of the data's size per particle)."""
    numel = int(np.prod([int(d) for d in x_shape]))
    check_memory(particles * max(1, rows) * numel * 4 * 4, what, fix)


def check_memory(needed: int, what: str, fix: str) -> None:
    """Refuse, before allocating, a request that needs more memory than the machine has available."""
    free = available_memory()
    if free is not None and needed > free:
        raise ConfigError(f"{what} need about {needed / 2**30:.1f} GiB of memory but {free / 2**30:.1f} GiB is available; {fix}")
