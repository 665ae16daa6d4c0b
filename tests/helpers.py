"""Helpers shared by the tests (import them as ``from tests.helpers import ...``; the repository root is on the path)."""

from __future__ import annotations

import numpy as np


def as_float64(value) -> np.ndarray:
    """A numpy float64 copy of a torch tensor (any device, with or without grad), a numpy array or a number."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def assert_close_scaled(actual, expected, rel: float = 1e-5, what: str = "") -> None:
    """Assert ``||actual - expected|| <= rel * ||expected||`` (Euclidean norms over all elements, in float64).

    For float results computed in another summation order (a hand-written oracle, another thread count, another CPU):
    rounding errors scale with the size of the whole result, so an elementwise ``rtol`` fails on elements near zero
    that cancelled differently, as the ADGM gradient check did on CI's CPUs (an element of 2.4e-6 absolute error
    against ``atol=1e-6``, when the whole difference was 3e-7 of the gradient's norm). Shapes must be equal; a number
    as ``expected`` stands for a tensor of ``actual``'s shape filled with it. NaNs must sit at the same places.
    """
    a, b = as_float64(actual), as_float64(expected)
    if b.ndim == 0 and a.ndim > 0:
        b = np.broadcast_to(b, a.shape)
    label = f"{what}: " if what else ""
    assert a.shape == b.shape, f"{label}shape {a.shape} != expected shape {b.shape}"
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b), f"{label}NaN at {np.argwhere(nan_a != nan_b)[:5].tolist()} in one and not the other"
    a, b = np.where(nan_a, 0.0, a), np.where(nan_b, 0.0, b)
    difference, scale = float(np.linalg.norm((a - b).ravel())), float(np.linalg.norm(b.ravel()))
    if difference <= rel * scale:
        return
    worst = np.unravel_index(np.argmax(np.abs(a - b)), a.shape) if a.ndim else ()
    relative = difference / scale if scale > 0 else float("inf")
    raise AssertionError(f"{label}||actual - expected|| = {difference:.3g} is {relative:.3g} of ||expected|| = {scale:.3g} "
                         f"(allowed {rel:g}); largest elementwise difference {abs(a - b)[worst]:.3g} at index "
                         f"{tuple(int(i) for i in worst)}: {a[worst]:.8g} against {b[worst]:.8g}")


def sbc_ranks(draws, truth, rng: np.random.Generator) -> np.ndarray:
    """Simulation-based calibration ranks (Talts et al. 2018): the rank of each ``truth`` value among the posterior
    ``draws`` of it (``(L, ...)`` against ``(...)``), 0..L; ties (a discrete latent) are broken at random, so the ranks
    are uniform on 0..L exactly when the draws come from the right posterior."""
    draws, truth = np.asarray(draws), np.asarray(truth)
    below, ties = (draws < truth).sum(0), (draws == truth).sum(0)
    return (below + rng.integers(0, ties + 1)).ravel()


def uniform_ranks_pvalue(ranks: np.ndarray, num_draws: int, bins: int = 10) -> float:
    """Chi-square p-value of ranks 0..num_draws against the uniform, over ``bins`` equal bins (num_draws + 1 divisible by bins)."""
    from scipy.stats import chisquare

    assert (num_draws + 1) % bins == 0, (num_draws, bins)
    return float(chisquare(np.bincount(np.asarray(ranks) // ((num_draws + 1) // bins), minlength=bins)).pvalue)
