"""Minibatches for semi-supervised objectives: unlabeled batches paired with reweighted labeled ones.

Every step's objective must be an unbiased estimate of the full-data one, whatever the mix of labeled and
unlabeled examples: the unlabeled part is scaled by ``N_u / B_u`` (the ``data`` plate's subsampling), and each
labeled example ``i`` drawn with probability ``p_i`` per draw carries the weight ``1 / (B_l p_i)``, so that
``E[sum_b w_b f(i_b)] = sum_i f(i)`` for any per-example term ``f``.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from ..data import Split, shuffled_batches, take_rows
from ..data.lazy import batch_rows


class LabeledSampler:
    """Draws labeled minibatches of ``batch_size``: class-balanced with replacement (class uniform, then an example
    uniform within it), or uniform without replacement (cycling through permutations). Returns indices and weights.
    """

    def __init__(self, y: torch.Tensor, batch_size: int, balanced: bool, generator: torch.Generator):
        self.n, self.batch_size, self.balanced, self.generator = len(y), batch_size, balanced, generator
        classes, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
        self.probs = 1.0 / (len(classes) * counts[inverse].double()) if balanced else torch.full((self.n,), 1.0 / self.n, dtype=torch.float64)
        self._queue = torch.empty(0, dtype=torch.long)

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, weights)`` of one labeled batch; ``weights = 1 / (batch_size * p_i)``."""
        if self.balanced:
            idx = torch.multinomial(self.probs, self.batch_size, replacement=True, generator=self.generator)
        else:
            while len(self._queue) < self.batch_size:
                self._queue = torch.cat([self._queue, torch.randperm(self.n, generator=self.generator)])
            idx, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
        return idx, (1.0 / (self.batch_size * self.probs[idx])).float()


def labeled_unlabeled_batches(train: Split, batch_size: int, labeled_batch_size: int | None, balanced: bool,
                              generator: torch.Generator, device: torch.device, alpha: float,
                              labeled_weight: float = 1.0) -> Iterator[dict]:
    """One epoch: a pass over the unlabeled examples in batches of ``batch_size``, each step with a labeled batch.

    Keys: ``x``, ``num_data`` (unlabeled part); ``x_labeled``, ``y_labeled``, ``labeled_weights``, ``num_labeled``
    and ``alpha`` (labeled part). ``labeled_weights`` are the sampler's unbiased weights times ``labeled_weight``
    (how many times each labeled example counts). Without unlabeled data an epoch is a pass's worth of labeled
    batches; without labels it is unlabeled batches only.
    """
    x = train.epoch_x(generator)
    mask = train.labeled
    x_u, x_l = take_rows(x, ~mask), take_rows(x, mask)  # rows on disk stay there: labeled ones are read as drawn
    n_u, n_l = len(x_u), len(x_l)
    if n_l == 0:
        for xb in shuffled_batches(x_u, batch_size, generator):
            yield {"x": xb.to(device), "num_data": n_u}
        return
    y_l = train.y[mask]
    sampler = LabeledSampler(y_l, labeled_batch_size or min(batch_size, n_l), balanced, generator)

    def labeled_part() -> dict:
        idx, weights = sampler.draw()
        return {"x_labeled": batch_rows(x_l, idx).to(device), "y_labeled": y_l[idx].to(device), "labeled_weights": (labeled_weight * weights).to(device),
                "num_labeled": n_l, "alpha": alpha}

    if n_u == 0:
        for _ in range(math.ceil(n_l / sampler.batch_size)):
            yield labeled_part()
        return
    for xb in shuffled_batches(x_u, batch_size, generator):
        yield {"x": xb.to(device), "num_data": n_u, **labeled_part()}
