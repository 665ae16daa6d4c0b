"""Plain torch networks shared by every model. No Pyro statements here: models wrap these.

Every network accepts arbitrary leading batch dimensions, because enumerating a discrete latent in Pyro
adds a leading enumeration dimension to some inputs (see :func:`broadcast_cat`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ConfigError

ACTIVATIONS = {"softplus": nn.Softplus, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}") from None


def broadcast_cat(*tensors: torch.Tensor) -> torch.Tensor:
    """Concatenate on the last dim after broadcasting all leading dims (e.g. an enumerated one-hot ``y`` with ``x``)."""
    shape = torch.broadcast_shapes(*(t.shape[:-1] for t in tensors))
    return torch.cat([t.expand(*shape, t.shape[-1]) for t in tensors], dim=-1)


def flatten_event(x: torch.Tensor, event_shape: Sequence[int]) -> torch.Tensor:
    """Flatten the trailing ``event_shape`` dims of ``x`` into one feature dim."""
    n = len(event_shape)
    return x.reshape(*x.shape[: x.dim() - n], math.prod(event_shape))


class MLP(nn.Module):
    """Fully connected layers ``in_dim -> hidden... -> out_dim`` with an activation between (none after the last)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation_name: str = "softplus"):
        super().__init__()
        sizes = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation(activation_name))
        self.net = nn.Sequential(*layers)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The MLP of the inputs concatenated on the last dim (leading dims broadcast, as in :func:`broadcast_cat`).

        The first layer is applied to each input on its own columns, ``W [a; b] + c = W_a a + W_b b + c``, before
        broadcasting: with ``a`` an image batch ``(B, D)`` and ``b`` every class ``(K, 1, K)`` the wide product
        runs on B rows instead of K * B (a third of an M2 training step), with the same result.
        """
        first = self.net[0]
        if len(inputs) == 1 or not isinstance(first, nn.Linear):
            return self.net(broadcast_cat(*inputs))
        hidden, start = None, 0
        for t in inputs:
            part = F.linear(t, first.weight[:, start : start + t.shape[-1]], first.bias if hidden is None else None)
            hidden, start = part if hidden is None else hidden + part, start + t.shape[-1]
        return self.net[1:](hidden)


class GaussianEncoder(nn.Module):
    """``(inputs...) -> (loc, scale)`` of a diagonal Gaussian; inputs are flattened feature tensors, concatenated."""

    def __init__(self, in_dim: int, hidden: Sequence[int], z_dim: int, activation_name: str = "softplus"):
        super().__init__()
        self.net = MLP(in_dim, hidden, 2 * z_dim, activation_name)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.net(*inputs).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + 1e-4


class Decoder(nn.Module):
    """``(inputs...) -> tensor of shape (..., *x_shape)``: Bernoulli logits or Gaussian means of the observations."""

    def __init__(self, in_dim: int, hidden: Sequence[int], x_shape: Sequence[int], activation_name: str = "softplus"):
        super().__init__()
        self.x_shape = tuple(x_shape)
        self.net = MLP(in_dim, hidden, math.prod(self.x_shape), activation_name)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.net(*inputs)
        return out.reshape(*out.shape[:-1], *self.x_shape)


class Classifier(nn.Module):
    """``(inputs...) -> logits`` over ``num_classes``."""

    def __init__(self, in_dim: int, hidden: Sequence[int], num_classes: int, activation_name: str = "softplus"):
        super().__init__()
        self.net = MLP(in_dim, hidden, num_classes, activation_name)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*inputs)
