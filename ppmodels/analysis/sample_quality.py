"""One yardstick of sample quality for every model that samples (VAE, GMVAE, M2, GAN): "evaluation is hard".

A small classifier trained on the same data (an MLP on the flattened inputs, trained once per data set and cached
under the user cache folder, its test accuracy recorded) gives a feature space (its last hidden layer) and a label
for each sample. In that space:

``frechet_distance``   ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` between Gaussians fitted to real and
                       generated features (Heusel et al. 2017, FID with this classifier instead of Inception).
``precision``          the share of samples inside the k-NN ball of some real point; ``recall``: the share of real
                       points inside the k-NN ball of some sample (Kynkaanniemi et al. 2019, k = 3).
``coverage``           the share of samples the classifier assigns to each class beside the data's share, and the
                       classes below a tenth of their share: mode collapse, the lecture's failure.

Samples are what each model's ``sample`` gives (decoded means for the VAEs, G(z) for the GAN). Numbers are only
comparable at equal sample counts on one data set (the Frechet distance is biased upwards for small counts).

References: M. Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
NeurIPS 2017; T. Kynkaanniemi et al., "Improved Precision and Recall Metric for Assessing Generative Models",
NeurIPS 2019.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Dataset, LazyRows, map_rows
from ..data.mnist import cache_dir
from .diagnostics import problem
from ..errors import DataError
from ..files import load_checkpoint, read_json, save_checkpoint, write_json

FEATURE_HIDDEN = (256, 128)
CLASSIFIER_STEPS = 2000  # minibatches of 128: ~200 passes over digits' 1257 images, ~5 over MNIST's 50,000
VERSION = 1  # part of the cache key: a change of the classifier's recipe trains a new one
LOW_SHARE = 0.1  # a class with under this fraction of its data share of the samples counts as dropped


class FeatureNet(nn.Module):
    """An MLP classifier on flattened inputs; :meth:`features` is its last hidden layer."""

    def __init__(self, in_dim: int, num_classes: int, hidden=FEATURE_HIDDEN):
        super().__init__()
        sizes = [in_dim, *hidden]
        self.body = nn.Sequential(*[m for a, b in zip(sizes[:-1], sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(sizes[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(len(x), -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class Yardstick:
    """The fitted classifier of one data set, with the data's class shares and the classifier's test accuracy."""

    net: FeatureNet
    class_shares: np.ndarray
    test_accuracy: float
    path: Path | None = None

    @torch.no_grad()
    def features(self, x) -> np.ndarray:
        return np.asarray(map_rows(lambda xb: self.net.features(torch.as_tensor(np.asarray(xb), dtype=torch.float32)).numpy(), x))

    @torch.no_grad()
    def predict(self, x) -> np.ndarray:
        return np.asarray(map_rows(lambda xb: self.net(torch.as_tensor(np.asarray(xb), dtype=torch.float32)).argmax(-1).numpy(), x))


def fingerprint(dataset: Dataset) -> str:
    """A key for ``dataset``'s training split (its values, labels and shape) and the classifier's recipe."""
    idx = dataset.splits["train"]
    digest = hashlib.sha256(f"{VERSION}:{FEATURE_HIDDEN}:{CLASSIFIER_STEPS}:{dataset.x_shape}".encode())
    digest.update(np.ascontiguousarray(np.asarray(dataset.x[idx]), dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(dataset.y[idx]).tobytes())
    return digest.hexdigest()[:16]


def yardstick(dataset: Dataset, cache: str | Path | None = None) -> Yardstick:
    """The classifier of ``dataset`` (trained on its training split with every label, scored on its test split),
    from ``cache`` (default: ``~/.cache/ppmodels/yardstick``) or trained now and kept there."""
    if dataset.y is None or dataset.partly_labeled:
        raise DataError(f"the sample-quality yardstick needs a fully labeled data set; {dataset.name!r} is not")
    folder = Path(cache) if cache is not None else cache_dir() / "yardstick"
    key = f"{dataset.name}-{fingerprint(dataset)}"
    weights, meta = folder / f"{key}.pt", folder / f"{key}.json"
    num_classes = int(dataset.num_classes)
    net = FeatureNet(int(np.prod(dataset.x_shape)), num_classes)
    if weights.is_file() and meta.is_file():
        net.load_state_dict(load_checkpoint(weights)["model"])
        info = read_json(meta)
    else:
        info = train_classifier(net, dataset)
        try:
            save_checkpoint(weights, {"model": net.state_dict()})
            write_json(meta, info)
        except OSError as exc:  # a cache folder that is a file or read-only: measure anyway, say it is not kept
            warnings.warn(f"the sample-quality classifier could not be kept in {folder} ({exc.strerror or exc}); it is trained again "
                          f"next time: set XDG_CACHE_HOME to a writable folder", stacklevel=2)
            weights = None
    net.eval()
    return Yardstick(net, np.asarray(info["class_shares"]), float(info["test_accuracy"]), weights)


def train_classifier(net: FeatureNet, dataset: Dataset, seed: int = 0) -> dict[str, Any]:
    """Adam on the cross-entropy for :data:`CLASSIFIER_STEPS` minibatches of 128; returns the data's training class
    shares and the test accuracy (the validation split's when there is no test split)."""
    train = dataset.split("train")
    x, y = torch.as_tensor(np.asarray(train.x), dtype=torch.float32).reshape(len(train), -1), train.y
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net.apply(lambda m: m.reset_parameters() if isinstance(m, nn.Linear) else None)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(CLASSIFIER_STEPS):
        idx = torch.randint(len(x), (128,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        optimizer.step()
    held = dataset.split("test" if "test" in dataset.splits else "valid")
    with torch.no_grad():
        predicted = net(torch.as_tensor(np.asarray(held.x), dtype=torch.float32).reshape(len(held), -1)).argmax(-1)
    shares = np.bincount(y.numpy(), minlength=int(dataset.num_classes)) / len(y)
    return {"data": dataset.name, "test_accuracy": float((predicted == held.y).float().mean()), "class_shares": shares.tolist(),
            "train_size": len(x), "steps": CLASSIFIER_STEPS, "hidden": list(FEATURE_HIDDEN)}


# ----- the measures ------------------------------------------------------------------------------------------------
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to the rows of ``a`` and of ``b`` (float64).

    ``tr (S_a S_b)^(1/2)`` is the sum of the square roots of the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)``, which
    is symmetric positive semi-definite, so ``eigh`` gives it without the complex parts ``sqrtm`` can leave."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root @ cov_b @ root
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def knn_radii(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """The distance from each row of ``x`` to its ``k``-th nearest other row."""
    radii = [torch.cdist(part, x).topk(k + 1, largest=False).values[:, k] for part in x.split(chunk)]
    return torch.cat(radii)


def inside_balls(query: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Whether each row of ``query`` lies within ``radii[j]`` of some row ``j`` of ``centres``."""
    return torch.cat([(torch.cdist(part, centres) <= radii[None]).any(1) for part in query.split(chunk)])


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkaanniemi et al.'s improved precision and recall with ``k``-NN radii."""
    if min(len(real), len(fake)) <= k:
        raise DataError(f"precision/recall with k={k} needs more than {k} real and generated points, got {len(real)} and {len(fake)}")
    r, f = torch.as_tensor(real, dtype=torch.float32), torch.as_tensor(fake, dtype=torch.float32)
    precision = inside_balls(f, r, knn_radii(r, k)).float().mean()
    recall = inside_balls(r, f, knn_radii(f, k)).float().mean()
    return float(precision), float(recall)


def mode_coverage(labels: np.ndarray, class_shares: np.ndarray) -> dict[str, Any]:
    """The share of samples per class (as the classifier labels them) beside the data's, and the classes with under
    a tenth of their share."""
    shares = np.bincount(np.asarray(labels), minlength=len(class_shares)) / max(len(labels), 1)
    low = [int(c) for c in np.flatnonzero(shares < LOW_SHARE * np.asarray(class_shares))]
    return {"shares": [round(float(s), 4) for s in shares], "data_shares": [round(float(s), 4) for s in class_shares],
            "low_classes": low, "num_low_classes": len(low)}


def sample_quality(model, dataset: Dataset, split: str = "test", num_samples: int | None = None, seed: int = 0, k: int = 3,
                   cache: str | Path | None = None, stick: Yardstick | None = None) -> dict[str, Any]:
    """Every measure for ``model`` (anything with ``sample(num, generator)``) against ``split`` of ``dataset``:
    ``num_samples`` draws (default: as many as the split has, at most 10,000) with the given ``seed``."""
    stick = stick or yardstick(dataset, cache)
    real = dataset.split(split).x
    n = min(len(real), 10_000) if num_samples is None else num_samples
    real = np.asarray(real[:n])
    fake = np.asarray(model.sample(n, generator=torch.Generator().manual_seed(seed)), dtype=np.float32).reshape(n, *dataset.x_shape)
    return measure(stick, real, fake, k)


def generator_quality(model, dataset: Dataset, split: str = "test", num_samples: int | None = None, seed: int = 0,
                      checks: dict | None = None, records: list[dict] | None = None) -> tuple[dict[str, Any] | None, list[str]]:
    """:func:`sample_quality` and :func:`quality_warnings` where the yardstick applies (a fully labeled data set), else
    ``(None, [])``: what ``ppmodels evaluate`` and the GAN's training summary report."""
    if dataset.y is None or dataset.partly_labeled or split not in dataset.splits:
        return None, []
    if isinstance(dataset.x, LazyRows):  # the yardstick's classifier reads its training split whole: not data left on disk
        return None, []
    quality = sample_quality(model, dataset, split, num_samples=num_samples, seed=seed)
    return quality, quality_warnings(quality, checks, records)


def measure(stick: Yardstick, real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, Any]:
    """The yardstick's measures of ``fake`` against ``real`` (arrays of the data's shape)."""
    if not np.isfinite(fake).all():
        raise DataError("the samples hold NaN or infinite values: the generator has diverged")
    real_f, fake_f = stick.features(real), stick.features(fake)
    precision, recall = precision_recall(real_f, fake_f, k)
    coverage = mode_coverage(stick.predict(fake), stick.class_shares)
    return {"frechet_distance": round(frechet_distance(real_f, fake_f), 4), "precision": round(precision, 4), "recall": round(recall, 4),
            "k": k, "num_samples": len(fake), "coverage": coverage, "classifier_test_accuracy": round(stick.test_accuracy, 4)}


def quality_warnings(quality: dict[str, Any], checks: dict[str, Any] | None = None, records: list[dict] | None = None) -> list[str]:
    """The messages of :func:`quality_problems` (what ``ppmodels evaluate`` and a GAN's training summary print)."""
    return [p["message"] for p in quality_problems(quality, checks, records)]


#: a discriminator telling held-out data from samples at least this often has won the game outright
DISCRIMINATOR_WINS = 0.99
#: a last logged Frechet distance above this multiple of the run's best: diverged or oscillating
DIVERGED_RATIO = 1.5
#: a last logged Frechet distance not below this multiple of the first: no progress
PROGRESS_RATIO = 0.9
#: over the last half of the logged epochs, the Frechet distance's mean swing an epoch beyond its net change (in log
#: units, :func:`oscillation`) above which the run oscillates: healthy runs measured 0.01-0.08 (digits, DC-GAN and MLP,
#: 16-60 epochs), a generator at 250 times DC-GAN's rate 0.4 (docs/models/gan.md)
OSCILLATION = 0.15
#: the fewest logged distances in that last half for :func:`oscillation` to judge
OSCILLATION_MIN_POINTS = 4


def quality_problems(quality: dict[str, Any] | None, checks: dict[str, Any] | None = None, records: list[dict] | None = None) -> list[dict]:
    """What says a generator failed, each a problem of :func:`ppmodels.analysis.diagnostics.problem` (all ``bad``):
    classes it dropped (``mode_collapse``), a discriminator that wins outright (``discriminator_wins``), a run whose
    Frechet distance (logged per epoch) ended far above its best or became non-finite (``diverged``), swung up and
    down over its last half (``oscillates``, :func:`oscillation`) or never improved (``no_progress``). ``quality`` may be ``None`` (data the yardstick cannot measure)."""
    out = []
    coverage = (quality or {}).get("coverage", {})
    if coverage.get("num_low_classes"):
        top, count = int(np.argmax(coverage["shares"])), len(coverage["shares"])
        out.append(problem("mode_collapse", "coverage", "bad", coverage["num_low_classes"], 0,
                           f"mode collapse: classes {coverage['low_classes']} get under a tenth of their share of the samples "
                           f"(class {top} takes {coverage['shares'][top]:.0%}); the generator covers {count - coverage['num_low_classes']} of {count} classes"))
    accuracy = (checks or {}).get("discriminator_accuracy")
    if accuracy is not None and accuracy >= DISCRIMINATOR_WINS:
        out.append(problem("discriminator_wins", "discriminator", "bad", accuracy, DISCRIMINATOR_WINS,
                           f"the discriminator wins outright: it tells held-out data from samples {accuracy:.1%} of the time, so the generator "
                           "gets no useful gradient (train longer, lower d_lr, or raise label_smoothing)"))
    return out + _trace_problems(records or [])


def oscillation(distances: list[float]) -> float:
    """How much a run's Frechet distances swing without getting anywhere: over the last half of ``distances``, the mean
    absolute change of their logarithm from one logged epoch to the next, less the net change over that half divided
    by its steps. 0 for a trace that only falls (or only rises); 0.4 for one that moves 50% up and down every epoch."""
    tail = np.log(np.asarray(distances[len(distances) // 2:], dtype=np.float64))
    steps = np.diff(tail)
    return float((np.abs(steps).sum() - abs(tail[-1] - tail[0])) / len(steps)) if len(steps) else 0.0


def _trace_problems(records: list[dict]) -> list[dict]:
    """``diverged`` (non-finite), ``oscillates``, ``diverged`` (far above its best) or ``no_progress``, the first that
    holds, from the Frechet distances of ``metrics.jsonl`` (three logged epochs or more; seven for ``oscillates``)."""
    logged = [r for r in records if "frechet_distance" in r]
    distances = [(r["epoch"], r["frechet_distance"]) for r in logged if r["frechet_distance"] is not None]
    if logged and distances and logged[-1]["frechet_distance"] is None:
        return [problem("diverged", "training", "bad", None, None, f"the run diverged: the Frechet distance of epoch {logged[-1]['epoch']} is "
                        f"not finite, against {min(d for _, d in distances):.3g} at best; the last epoch's weights are kept")]
    if len(distances) < 3:
        return []
    best_epoch, best = min(distances, key=lambda p: p[1])
    (first_epoch, first), (last_epoch, last) = distances[0], distances[-1]
    swing = oscillation([d for _, d in distances])
    if len(distances) - len(distances) // 2 >= OSCILLATION_MIN_POINTS and swing > OSCILLATION:
        tail = distances[len(distances) // 2:]
        low, high = min(d for _, d in tail), max(d for _, d in tail)
        return [problem("oscillates", "training", "bad", round(swing, 4), OSCILLATION,
                        f"the run oscillates without settling: over its last {len(tail)} logged epochs the Frechet distance swung between "
                        f"{low:.3g} and {high:.3g} (a mean swing of {np.expm1(swing):.0%} an epoch beyond its net change), ending at {last:.3g}; "
                        "the generator jumps between modes (lower its rate, g_lr, or the discriminator's, d_lr)")]
    if last > DIVERGED_RATIO * best and last > best + 1e-9:
        return [problem("diverged", "training", "bad", last, DIVERGED_RATIO * best,
                        f"the run diverged or oscillates: the Frechet distance ended at {last:.3g} (epoch {last_epoch}), "
                        f"against {best:.3g} at epoch {best_epoch}; the last epoch's weights are kept")]
    if not last < PROGRESS_RATIO * first:
        return [problem("no_progress", "training", "bad", last, PROGRESS_RATIO * first,
                        f"no progress: the Frechet distance went from {first:.3g} (epoch {first_epoch}) to {last:.3g} (epoch {last_epoch})")]
    return []


#: the questions :func:`quality_verdicts` answers, by key (for tables a person reads)
QUALITY_TITLES = {"sample_quality": "Do the samples look like the data? (Frechet distance, precision, recall)",
                  "coverage": "Are all classes generated? (mode coverage)",
                  "discriminator": "How did the game end? (the discriminator on held-out data and samples)",
                  "training": "Did training make progress? (Frechet distance per epoch)"}


def quality_verdicts(quality: dict[str, Any] | None, checks: dict[str, Any] | None = None, records: list[dict] | None = None,
                     split: str = "test") -> dict[str, str]:
    """One plain sentence per question of :data:`QUALITY_TITLES` that the measures answer; a failure's sentence is
    the message of its :func:`quality_problems` entry."""
    found = {p["check"]: p["message"] for p in quality_problems(quality, checks, records)}
    out = {}
    if quality:
        out["sample_quality"] = (f"Frechet distance {quality['frechet_distance']:.3g} between {quality['num_samples']} samples and as many {split} data, "
                                 f"in the features of a classifier of the data (test accuracy {quality['classifier_test_accuracy']:.1%}; lower is better, "
                                 f"0 for the data against itself); precision {quality['precision']:.2f} (samples inside the data's {quality['k']}-NN balls: "
                                 f"realistic), recall {quality['recall']:.2f} (data inside the samples' balls: variety covered).")
        shares, data_shares = quality["coverage"]["shares"], quality["coverage"]["data_shares"]
        out["coverage"] = found.get("coverage") or (f"every class gets {min(shares):.1%} to {max(shares):.1%} of the samples (the data: "
                                                    f"{min(data_shares):.1%} to {max(data_shares):.1%}); none is dropped.")
    else:
        out["sample_quality"] = "not measured: the yardstick needs fully labeled data held in memory (a classifier of the data gives its features)."
    if (checks or {}).get("discriminator_accuracy") is not None:
        out["discriminator"] = found.get("discriminator") or (
            f"the discriminator gives held-out data D(x) = {checks['discriminator_real']:.2f} on average and samples {checks['discriminator_fake']:.2f}, "
            f"and tells them apart {checks['discriminator_accuracy']:.1%} of the time (50%: it cannot): the game is still open.")
    distances = [(r["epoch"], r["frechet_distance"]) for r in records or [] if r.get("frechet_distance") is not None]
    if found.get("training"):
        out["training"] = found["training"]
    elif distances:
        best_epoch, best = min(distances, key=lambda p: p[1])
        out["training"] = (f"the Frechet distance of the samples of each epoch went from {distances[0][1]:.3g} (epoch {distances[0][0]}) to "
                           f"{distances[-1][1]:.3g} (epoch {distances[-1][0]}), best {best:.3g} at epoch {best_epoch}"
                           + (": too few epochs to judge." if len(distances) < 3 else "."))
    return out


class QualityLog:
    """A trainer callback: the Frechet distance of ``num`` samples against ``num`` held-out points every ``every``
    epochs, added to the epoch's record (put it before :class:`~ppmodels.runs.MetricsLog` so the line carries it)."""

    def __init__(self, dataset: Dataset, every: int = 1, num: int = 1000, seed: int = 0, cache: str | Path | None = None):
        self.dataset, self.every, self.num, self.seed, self.cache = dataset, every, num, seed, cache
        self.stick: Yardstick | None = None

    def on_train_start(self, trainer) -> None:
        self.stick = self.stick or yardstick(self.dataset, self.cache)  # before the trainer's clock starts

    def on_epoch_end(self, trainer, record: dict) -> None:
        if record["epoch"] % self.every:
            return
        self.stick = self.stick or yardstick(self.dataset, self.cache)
        split = "valid" if "valid" in self.dataset.splits else "test"
        n = min(self.num, len(self.dataset.splits[split]))
        real = np.asarray(self.dataset.split(split).x[:n])
        state = torch.random.get_rng_state()  # sampling here must not move the run's random streams
        fake = np.asarray(trainer.model.sample(n, generator=torch.Generator().manual_seed(self.seed)), dtype=np.float32)
        torch.random.set_rng_state(state)
        distance = frechet_distance(self.stick.features(real), self.stick.features(fake.reshape(real.shape))) if np.isfinite(fake).all() else math.nan
        record["frechet_distance"] = round(distance, 4) if math.isfinite(distance) else None  # None: the samples diverged
