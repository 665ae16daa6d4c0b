"""Input corruption for denoising training (Vincent et al. 2008; Im et al. 2017, "denoising criterion for VAEs").

The encoder sees a corrupted copy ``x~ ~ p(x~ | x)`` while the model still scores the clean ``x``, so training
maximises ``E_p(x~|x) E_q(z|x~) [log p(x, z) - log q(z | x~)]``. Corruption only happens in training mode;
evaluation, encoding and scoring see the data as given.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

CORRUPTIONS = ("none", "mask", "gaussian")


def check_corruption(kind: str, level: float) -> None:
    if kind not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {kind!r}; use one of {', '.join(CORRUPTIONS)}")
    if kind == "mask" and not 0 <= level < 1:
        raise ConfigError(f"the masking rate noise_level must be in [0, 1), got {level}")
    if kind == "gaussian" and not level >= 0:
        raise ConfigError(f"the Gaussian noise_level (standard deviation) must be >= 0, got {level}")


def corrupt(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A corrupted copy of ``x``.

    :param kind: ``mask`` sets each feature to 0 with probability ``level`` (masking noise with rate nu);
        ``gaussian`` adds ``Normal(0, level)`` noise; ``none`` returns ``x``.
    :param level: the masking rate nu, or the noise standard deviation.

    Example::

        x = torch.ones(100, 64)
        x_in = corrupt(x, "mask", 0.3)     # about 30% of the pixels zeroed
    """
    if kind == "none" or level == 0:
        return x
    if kind == "mask":
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= level
        return x * keep
    if kind == "gaussian":
        return x + level * torch.randn(x.shape, generator=generator, device=x.device)
    raise ConfigError(f"unknown corruption {kind!r}; use one of {', '.join(CORRUPTIONS)}")
