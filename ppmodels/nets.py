"""Plain torch networks shared by every model. No Pyro statements here: models wrap these.

Every network accepts arbitrary leading batch dimensions, because enumerating a discrete latent in Pyro
adds a leading enumeration dimension to some inputs (see :func:`broadcast_cat`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ConfigError

# "linear" (no nonlinearity) turns an encoder/decoder pair into a linear autoencoder, the bridge from PCA to the VAE
ACTIVATIONS = {"softplus": nn.Softplus, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
               "linear": nn.Identity}
ACTIVATION_NAMES = tuple(ACTIVATIONS)  # the choices of a config's ``activation``
NETS = ("mlp", "conv")
# what the networks' matrix products and convolutions compute in while training (inputs, weights and outputs of
# the products rounded to the dtype, sums accumulated in float32); "fp32": everything in the parameters' dtype
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
_compute_dtype: ContextVar[torch.dtype | None] = ContextVar("compute_dtype", default=None)


@contextmanager
def precision(name: str) -> Iterator[None]:
    """Run every network of this module in ``name`` (a key of :data:`PRECISIONS`) inside the block: layers under
    ``torch.autocast``, outputs cast back to the parameters' dtype. Only the networks: the likelihoods, the ELBO and
    Pyro's sum over enumerated values stay in float32. ``bf16`` speeds matrix products up on CPUs with AVX512-BF16
    or AMX and on recent GPUs (a 1100x500 by 500x784 product: 4.6 times on this project's CPU) and slows them where
    bfloat16 is emulated."""
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    token = _compute_dtype.set(PRECISIONS[name])
    try:
        yield
    finally:
        _compute_dtype.reset(token)


def compute_dtype() -> torch.dtype | None:
    """The dtype :func:`precision` set for the networks here, ``None`` outside a block (the parameters' dtype)."""
    return _compute_dtype.get()


def autocast(device: torch.device):
    """The autocast context of the precision set by :func:`precision` (none outside one)."""
    dtype = compute_dtype()
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


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
        with autocast(inputs[0].device):
            if len(inputs) == 1 or not isinstance(first, nn.Linear):
                out = self.net(broadcast_cat(*inputs))
            else:
                hidden, start = None, 0
                for t in inputs:
                    part = F.linear(t, first.weight[:, start : start + t.shape[-1]], first.bias if hidden is None else None)
                    hidden, start = part if hidden is None else hidden + part, start + t.shape[-1]
                out = self.net[1:](hidden)
        return out.to(first.weight.dtype)


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


# ----- convolutional encoders/decoders for images with any number of channels ------------------------------------
def _halvings(size: int, num: int) -> list[int]:
    """Spatial sizes after each stride-2 convolution (kernel 3, padding 1): ``ceil(size / 2)`` each time."""
    sizes = [size]
    for _ in range(num):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _fold_batch(x: torch.Tensor, event_dim: int) -> tuple[torch.Tensor, torch.Size]:
    """``(..., *event)`` -> ``(prod(...), *event)`` and the leading shape, for layers that take one batch dim."""
    lead = x.shape[: x.dim() - event_dim]
    return x.reshape(-1, *x.shape[x.dim() - event_dim:]), lead


def _folded(net, x: torch.Tensor, event_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Size]:
    """``net`` on ``x`` with its leading dims folded into one batch dim (:func:`_fold_batch`), under :func:`autocast`
    (bfloat16 inside ``precision("bf16")``), the output cast back to ``dtype``; and the leading shape to unfold."""
    flat, lead = _fold_batch(x, event_dim)
    with autocast(x.device):
        out = net(flat)
    return out.to(dtype), lead


class ConvFeatures(nn.Module):
    """``(..., C, H, W) -> (..., out_dim)``: stride-2 convolutions (kernel 3) with ``channels`` filters each, flattened.

    Any number of input channels (1 for MNIST, 5 for ugriz galaxy cutouts) and any image size: each layer halves
    H and W (rounding up), so 28x28 -> 14 -> 7 and 64x64 -> 32 -> 16.
    """

    def __init__(self, x_shape: Sequence[int], channels: Sequence[int], activation_name: str = "relu"):
        super().__init__()
        if len(x_shape) != 3:
            raise ConfigError(f"a convolutional net needs image data (C x H x W), but the data has shape {list(x_shape)}; use --net mlp")
        in_ch, h, w = x_shape
        layers: list[nn.Module] = []
        for out_ch in channels:
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1), activation(activation_name)]
            in_ch = out_ch
        self.net = nn.Sequential(*layers)
        self.out_shape = (in_ch, _halvings(h, len(channels))[-1], _halvings(w, len(channels))[-1])
        self.out_dim = math.prod(self.out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, lead = _folded(self.net, x, 3, self.net[0].weight.dtype)
        return out.reshape(*lead, self.out_dim)


class FlatFeatures(nn.Module):
    """``(..., *x_shape) -> (..., prod(x_shape))``: the MLP encoder's view of the data (no parameters)."""

    def __init__(self, x_shape: Sequence[int]):
        super().__init__()
        self.x_shape = tuple(x_shape)
        self.out_dim = math.prod(self.x_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return flatten_event(x, self.x_shape)


class ConvDecoder(nn.Module):
    """``(inputs...) -> (..., C, H, W)``: an MLP to a small feature map, then stride-2 transposed convolutions.

    The mirror of :class:`ConvFeatures`: ``output_padding`` is chosen per layer so every size is met exactly
    (7 -> 14 -> 28, 16 -> 32 -> 64, odd sizes too).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], x_shape: Sequence[int], channels: Sequence[int],
                 activation_name: str = "relu"):
        super().__init__()
        if len(x_shape) != 3:
            raise ConfigError(f"a convolutional net needs image data (C x H x W), but the data has shape {list(x_shape)}; use --net mlp")
        out_ch, h, w = x_shape
        hs, ws = _halvings(h, len(channels)), _halvings(w, len(channels))
        rev = list(reversed(channels))
        self.start_shape = (rev[0], hs[-1], ws[-1])
        self.mlp = nn.Sequential(MLP(in_dim, hidden, math.prod(self.start_shape), activation_name), activation(activation_name))
        layers: list[nn.Module] = []
        for i, in_ch in enumerate(rev):
            last = i == len(rev) - 1
            target_h, target_w = hs[-2 - i], ws[-2 - i]
            pad = (target_h - (2 * hs[-1 - i] - 1), target_w - (2 * ws[-1 - i] - 1))
            layers.append(nn.ConvTranspose2d(in_ch, out_ch if last else rev[i + 1], 3, stride=2, padding=1, output_padding=pad))
            if not last:
                layers.append(activation(activation_name))
        self.net = nn.Sequential(*layers)
        self.x_shape = tuple(x_shape)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        start = self.mlp(broadcast_cat(*inputs))
        out, lead = _folded(lambda flat: self.net(flat.reshape(-1, *self.start_shape)), start, 1, start.dtype)
        return out.reshape(*lead, *self.x_shape)


def x_features(net: str, x_shape: Sequence[int], channels: Sequence[int], activation_name: str) -> nn.Module:
    """What an encoder sees of ``x``: flattened features (``mlp``) or convolutional features (``conv``); has ``out_dim``."""
    if net == "conv":
        return ConvFeatures(x_shape, channels, activation_name)
    return FlatFeatures(x_shape)


def x_decoder(net: str, in_dim: int, hidden: Sequence[int], x_shape: Sequence[int], channels: Sequence[int],
              activation_name: str) -> nn.Module:
    """A decoder ``(inputs...) -> (..., *x_shape)`` of either kind."""
    if net == "conv":
        return ConvDecoder(in_dim, hidden, x_shape, channels, activation_name)
    return Decoder(in_dim, hidden, x_shape, activation_name)


# ----- the DC-GAN's networks (Radford et al. 2016) and their fully connected variant ---------------------------------
GAN_OUTPUTS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "linear": nn.Identity}


def dcgan_init_(module: nn.Module) -> nn.Module:
    """DC-GAN's initialisation: convolution and linear weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


class DCGenerator(nn.Module):
    """``z (N, z_dim) -> x (N, C, H, W)``: a linear map to a small feature map, then fractional-strided (stride-2
    transposed) convolutions, batch norm and ReLU inside, ``output`` (sigmoid, tanh or linear) at the end.

    The mirror of :class:`DCDiscriminator` (``channels`` reversed), with padding chosen per layer so 7 -> 14 -> 28,
    4 -> 7 and 2 -> 4 -> 8 are met exactly. ``kernel`` 3 or 4: with 4, divisible by the stride, every output pixel
    gets the same number of kernel taps, which avoids the checkerboard pattern of kernel 3 (Odena, Dumoulin & Olah,
    "Deconvolution and Checkerboard Artifacts", Distill 2016)."""

    def __init__(self, z_dim: int, x_shape: Sequence[int], channels: Sequence[int], output: str = "sigmoid", kernel: int = 3):
        super().__init__()
        out_ch, h, w = x_shape
        hs, ws = _halvings(h, len(channels)), _halvings(w, len(channels))
        rev = list(reversed(channels))
        self.start_shape = (rev[0], hs[-1], ws[-1])
        self.project = nn.Sequential(nn.Linear(z_dim, math.prod(self.start_shape)), nn.BatchNorm1d(math.prod(self.start_shape)), nn.ReLU())
        layers: list[nn.Module] = []
        for i, in_ch in enumerate(rev):
            last = i == len(rev) - 1
            odd = (hs[-2 - i] % 2, ws[-2 - i] % 2)  # the size to reach is 2n - 1 (odd) or 2n
            if kernel == 3:  # out = 2n - 1 + output_padding
                padding, extra = (1, 1), (1 - odd[0], 1 - odd[1])
            else:  # kernel 4: out = 2n with padding 1, 2n - 1 with padding 2 and output_padding 1
                padding, extra = (1 + odd[0], 1 + odd[1]), odd
            layers.append(nn.ConvTranspose2d(in_ch, out_ch if last else rev[i + 1], kernel, stride=2, padding=padding, output_padding=extra))
            layers += [GAN_OUTPUTS[output]()] if last else [nn.BatchNorm2d(rev[i + 1]), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out, lead = _folded(lambda flat: self.net(self.project(flat).reshape(-1, *self.start_shape)), z, 1, self.project[0].weight.dtype)
        return out.reshape(*lead, *out.shape[1:])


class MinibatchStd(nn.Module):
    """``(N, F, ...) -> (N, F + 1, ...)``: appends one feature, how much the examples of a group of ``group`` differ
    (the standard deviation of every feature and position over the group, averaged), the same for each member.

    A discriminator sees single examples, so it cannot tell a generator that draws a few modes well from one that
    draws all of them; with this feature a group of near-copies stands out (Karras et al., "Progressive Growing of
    GANs", ICLR 2018, section 3). Groups are consecutive rows (batches are shuffled, and real and generated batches
    go through separately); the rows left over after the last whole group share the statistic of the last ``group``
    rows, so every statistic comes from ``group`` examples (fewer only when the batch is smaller)."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    @staticmethod
    def _spread(x: torch.Tensor, group: int) -> torch.Tensor:
        grouped = x.float().reshape(-1, group, *x.shape[1:])
        spread = (grouped.var(dim=1, unbiased=False) + 1e-8).sqrt().flatten(1).mean(dim=1)
        return spread.repeat_interleave(group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        group = min(self.group, n)
        whole = n - n % group
        spread = self._spread(x[:whole], group)
        if whole < n:
            spread = torch.cat([spread, self._spread(x[n - group:], group)[whole - n:]])
        feature = spread.to(x.dtype).reshape(n, 1, *([1] * (x.dim() - 2))).expand(n, 1, *x.shape[2:])
        return torch.cat([x, feature], dim=1)


class DCDiscriminator(nn.Module):
    """``x (N, C, H, W) -> logit (N,)``: strided convolutions with LeakyReLU(0.2), batch norm after all but the first,
    then (``minibatch_std`` > 0) the spread of groups of that many examples as one more feature map
    (:class:`MinibatchStd`), then a linear map to one logit of "x is real"."""

    def __init__(self, x_shape: Sequence[int], channels: Sequence[int], minibatch_std: int = 0):
        super().__init__()
        in_ch, h, w = x_shape
        layers: list[nn.Module] = []
        for i, out_ch in enumerate(channels):
            layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1))
            layers += [nn.LeakyReLU(0.2)] if i == 0 else [nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2)]
            in_ch = out_ch
        if minibatch_std:  # only then: the linear layer keeps its index in the saved weights of runs without it
            layers.append(MinibatchStd(minibatch_std))
            in_ch += 1
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(in_ch * _halvings(h, len(channels))[-1] * _halvings(w, len(channels))[-1], 1))
        self.x_shape = tuple(x_shape)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, lead = _folded(self.net, x, 3, self.net[0].weight.dtype)
        return out.reshape(lead)


class MLPGenerator(nn.Module):
    """``z -> x (N, *x_shape)`` for flat data: linear layers with batch norm and ReLU, ``output`` at the end."""

    def __init__(self, z_dim: int, hidden: Sequence[int], x_shape: Sequence[int], output: str = "sigmoid"):
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip([z_dim, *hidden[:-1]], hidden):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        layers += [nn.Linear(hidden[-1] if hidden else z_dim, math.prod(x_shape)), GAN_OUTPUTS[output]()]
        self.net = nn.Sequential(*layers)
        self.x_shape = tuple(x_shape)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out, lead = _folded(self.net, z, 1, self.net[0].weight.dtype)
        return out.reshape(*lead, *self.x_shape)


class MLPDiscriminator(nn.Module):
    """``x (N, *x_shape) -> logit (N,)``: linear layers with LeakyReLU(0.2), then (``minibatch_std`` > 0) the spread
    of groups of that many examples as one more feature (:class:`MinibatchStd`), then one logit."""

    def __init__(self, x_shape: Sequence[int], hidden: Sequence[int], minibatch_std: int = 0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip([math.prod(x_shape), *hidden[:-1]], hidden):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        width = hidden[-1] if hidden else math.prod(x_shape)
        if minibatch_std:
            layers.append(MinibatchStd(minibatch_std))
            width += 1
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.x_shape = tuple(x_shape)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, lead = _folded(self.net, x, len(self.x_shape), self.net[-1].weight.dtype)
        return out.reshape(lead)
