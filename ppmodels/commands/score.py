"""Out-of-distribution scores: how probable is each new observation under a trained model, relative to its training data?

For each datum, :func:`score_data` reports the importance-weighted bound on ``log p(x)`` (the model's
:meth:`~ppmodels.models.PPModel.iw_log_likelihood`; exact for ``ppca`` and ``gmm``) and, where a mixture was fitted
on the run's latent codes (``ppmodels train gmm --data latents:RUN``), the mixture's ``log p(z)`` at ``z = E[z | x]``.
Each score comes with its percentile among the same score on (a sample of) the run's training data: a percentile
near 0 says "less probable than almost every training datum", a likely outlier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import map_rows, select_split
from ..errors import ConfigError, check_int, check_seed
from ..files import atomic_write, write_arrays
from ..runs import check_output, check_particles_memory, latent_decoder, load, open_for_run, open_run_dataset, output_lock, record_output

FORMATS = (".npz", ".csv")


def percentile_of(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Percent of ``reference`` scores at or below each of ``scores`` (0 to 100)."""
    reference = np.sort(np.asarray(reference))
    return 100.0 * np.searchsorted(reference, scores, side="right") / len(reference)


def _models(run: str | Path, mixture: str | Path | None):
    """``(model, mixture, model_run)``: a run named as RUN that is itself a latent mixture scores through its decoder."""
    model = load(run)
    decoder = latent_decoder(model)
    if decoder is not None:
        if mixture is not None:
            raise ConfigError(f"run {run} is already a mixture on latent codes; drop --mixture or pass the encoder's run as RUN")
        return decoder, model, Path(model.config.decoder_run)
    density = load(mixture) if mixture is not None else None
    if density is not None and Path(getattr(density.config, "decoder_run", "") or ".").resolve() != Path(run).resolve():
        raise ConfigError(f"--mixture {mixture} was not fitted on latents:{run}; train it with `ppmodels train gmm --data latents:{run}`")
    return model, density, Path(run)


def score_data(run: str | Path, x, *, mixture: str | Path | None = None, num_particles: int = 100,
               reference_size: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-datum scores of ``x`` (array ``(N, *x_shape)``) under a trained run, with training-data percentiles.

    :param run: a run folder (any model), or a mixture fitted on ``latents:RUN`` (then RUN's model scores ``x``).
    :param mixture: a ``gmm`` run fitted on ``latents:RUN`` whose ``log p(z)`` is reported too.
    :param num_particles: importance samples per datum.
    :param reference_size: training data scored for the percentiles (a seeded random subset when larger).
    :returns: ``log_px``, ``log_px_percentile`` and, with a mixture, ``log_pz``, ``log_pz_percentile``.

    Example::

        ppmodels.train("vae", "digits", out="runs/vae", train_config=TrainConfig(epochs=1), model_options={"hidden": [64]}, progress=False)
        ppmodels.train("gmm", "latents:runs/vae", out="runs/gmm", train_config=TrainConfig(epochs=2), progress=False)
        noise_images = np.random.default_rng(0).random((20, 1, 8, 8))
        scores = score_data("runs/vae", noise_images, mixture="runs/gmm")
        scores["log_px_percentile"]        # near 0 for noise
    """
    check_int(num_particles, "num_particles", minimum=1)
    check_int(reference_size, "reference_size", minimum=1)
    check_seed(seed)
    model, density, model_run = _models(run, mixture)
    check_particles_memory(model.config.x_shape, num_particles, 500, f"--num-particles {num_particles}", "ask for fewer --num-particles")
    reference = open_run_dataset(model_run).split("train").x
    gen = torch.Generator().manual_seed(seed)
    if len(reference) > reference_size:
        reference = reference[torch.randperm(len(reference), generator=gen)[:reference_size]]
    torch.manual_seed(seed)
    # x may be rows on disk (npy/h5/zarr specs): scored a chunk at a time; each chunk is checked by the model
    scores = {"log_px": map_rows(lambda xb: model.iw_log_likelihood(xb, num_particles).cpu().numpy(), x)}
    train_px = model.iw_log_likelihood(reference, num_particles).cpu().numpy()
    scores["log_px_percentile"] = percentile_of(scores["log_px"], train_px)
    if density is not None:
        scores["log_pz"] = map_rows(lambda xb: density.log_density(model.transform(xb)).cpu().numpy(), x)
        train_pz = density.log_density(model.transform(reference)).cpu().numpy()
        scores["log_pz_percentile"] = percentile_of(scores["log_pz"], train_pz)
    return scores


def score(run: str | Path, data: str, out: str | Path, *, data_dir: str | None = None, split: str = "all",
          mixture: str | Path | None = None, num_particles: int = 100, reference_size: int = 1000, seed: int = 0,
          overwrite: bool = False) -> Path:
    """Score the data named by ``data`` (a spec) with :func:`score_data` and write one row per datum to ``.npz`` or ``.csv``
    (an existing file ppmodels did not write is replaced only with ``overwrite``; see :mod:`ppmodels.runs.outputs`)."""
    out = check_output(out, FORMATS, overwrite=overwrite, command="score", run=run)
    x, y = select_split(open_for_run(run, data, data_dir), split)  # an image cube: the run's transform
    scores = score_data(run, x, mixture=mixture, num_particles=num_particles, reference_size=reference_size, seed=seed)
    if y is not None:
        scores["y"] = y.numpy()
    with output_lock(out):
        if out.suffix == ".npz":
            write_arrays(out, scores)
        else:
            names = list(scores)
            table = np.column_stack([scores[n].astype(np.float64) for n in names])
            atomic_write(out, lambda tmp: np.savetxt(tmp, table, delimiter=",", header=",".join(names), comments="", fmt="%.6g"))
        return record_output(out, "score", run)
