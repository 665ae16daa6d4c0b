"""``ppmodels sample``: draws from a trained model. :func:`sample` picks the mode; each mode is a function of its own.

``prior``          x ~ p(x | z), z ~ p(z) (or a density's codes decoded through its latents:RUN decoder).
``posterior``      S draws of every latent from the guide q(. | x) for M data points and x ~ p(x | latents),
                   written with :func:`ppmodels.analysis.inference_data.save_idata` (netCDF ``.nc`` or ``.npz``), the file
                   layout ``ppmodels diagnose`` writes too.
``conditional``    x ~ p(x | y=k, z), z ~ p(z), for one class or every class (one row per class in a PNG grid).
``analogies``      Kingma et al. (2014), Figure 1 right: z inferred from each given image, decoded with every
                   class y; one row per input image, the input first.
``interpolate``    rows of codes on the straight line between two prior draws, decoded (Radford et al. 2016, Fig. 4).
``analogy``        latent arithmetic on groups of prior draws, "A - B + C": the codes of each group averaged, as
                   DC-GAN did (Radford et al. 2016, Fig. 7), the result decoded with small perturbations.

Models with a class variable ``y`` in their generative story (M2, M1+M2) take part in ``conditional`` and ``analogies``
through the small interface :class:`~ppmodels.models.LabeledGenerator`, models that decode codes drawn from their
prior (GAN, VAE, GMVAE) in the last two through :class:`~ppmodels.models.CanSampleCodes`; any other model gets a
one-line :class:`~ppmodels.errors.ConfigError`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..analysis.inference_data import posterior_idata, save_idata
from ..data import load_dataset, select_split
from ..errors import ConfigError, DataError, check_int, check_seed
from ..files import write_arrays
from ..models import CanSample, CanSampleCodes, LabeledGenerator, PPModel
from ..plots import CELL_PX, save_image_grid
from ..runs import check_memory, check_output, latent_decoder, load, open_for_run, output_lock, record_output


def require_labels(model, option: str) -> LabeledGenerator:
    """``model`` if it has a class variable y, else a :class:`ConfigError` naming ``option``."""
    if not isinstance(model, LabeledGenerator):
        raise ConfigError(f"{option} needs a model with a class variable y (m2, m1m2); model {model.name!r} has none")
    return model


def require_codes(model, option: str) -> CanSampleCodes:
    """``model`` if it decodes codes drawn from its prior, else a :class:`ConfigError` naming ``option``."""
    if not isinstance(model, CanSampleCodes):
        raise ConfigError(f"{option} needs a model that decodes latent codes drawn from its prior (gan, vae, gmvae, m1); model {model.name!r} has none")
    return model


def parse_analogy(text: str, num: int) -> list[tuple[int, list[int]]]:
    """``"3,7,12 - 5,9,20 + 1,2,4"`` -> ``[(1, [3, 7, 12]), (-1, [5, 9, 20]), (1, [1, 2, 4])]``: signed groups of
    sample numbers, each below ``num`` (the draws of the prior grid with the same ``--seed`` and ``--num``)."""
    tokens = [t.strip() for t in re.split(r"([+-])", str(text))]
    if tokens[0] == "":
        tokens = tokens[1:]
    else:
        tokens = ["+", *tokens]
    terms = []
    for sign, group in zip(tokens[::2], tokens[1::2]):
        try:
            indices = [int(i) for i in group.split(",")]
        except ValueError:
            indices = []
        if not indices or any(not 0 <= i < num for i in indices):
            raise ConfigError(f"--analogy {text!r}: each group must list sample numbers 0..{num - 1} separated by commas, "
                              "groups joined by + or -, e.g. '3,7,12 - 5,9,20 + 1,2,4' (numbers of the prior grid drawn with the same --seed and --num)")
        terms.append((1 if sign == "+" else -1, indices))
    if len(tokens) % 2 or not terms:
        raise ConfigError(f"--analogy {text!r} does not end in a group of sample numbers; e.g. '3,7,12 - 5,9,20 + 1,2,4'")
    return terms


def parse_labels(label: str | int, num_classes: int) -> list[int]:
    """``"all"`` -> ``[0, ..., K-1]``; ``"3"`` -> ``[3]``, checked against the model's ``num_classes``."""
    if str(label).strip().lower() == "all":
        return list(range(num_classes))
    try:
        value = int(str(label))
    except ValueError:
        raise ConfigError(f"--label {label!r} is not a class number; give 0..{num_classes - 1} or all") from None
    if not 0 <= value < num_classes:
        raise ConfigError(f"--label {value} is out of range: the model has classes 0..{num_classes - 1}; give one of them or all")
    return [value]


def pick_data(run, model, spec: str, num_data: int | None, data_dir: str | None = None, split: str = "all"):
    """The first ``num_data`` points of ``split`` of ``spec``: ``(x, y or None, dataset indices)``, ``x`` checked; an
    image cube given to a run folder is standardised by the run's recorded transform."""
    check_int(num_data, "--num-data", minimum=1, optional=True)
    dataset = load_dataset(spec, data_dir=data_dir) if isinstance(run, PPModel) else open_for_run(run, spec, data_dir)
    x, y = select_split(dataset, split)
    index = np.arange(len(dataset.x)) if split == "all" else dataset.splits[split]
    n = len(x) if num_data is None else min(num_data, len(x))
    x = model.check_x(x[:n])
    return x, None if y is None else y[:n], index[:n]


def sample_posterior(run: str | Path, data: str, out: str | Path, *, num_data: int | None = 10, draws: int = 100,
                     seed: int = 0, data_dir: str | None = None, split: str = "all", overwrite: bool = False) -> Path:
    """Write posterior draws for the first ``num_data`` points of ``data`` to ``out`` (``.nc`` or ``.npz``).

    :param run: a run folder (or a model object).
    :param data: data spec whose points to condition on; its feature shape must be the run's.
    :param draws: draws S per datum from the guide; arrays have dims ``(chain=1, draw=S, datum=M, ...)``.
    :param seed: the same seed gives a byte-identical file.

    Example::

        ppmodels.train("vae", "digits", out="runs/vae", train_config=TrainConfig(epochs=1), model_options={"hidden": [64]}, progress=False)
        sample_posterior("runs/vae", "digits", "post.nc", num_data=10, draws=50)
    """
    check_int(draws, "--draws", minimum=1)
    out = check_output(out, (".nc", ".npz"), overwrite=overwrite, command="sample", run=run)
    model = _model(run)
    x, y, index = pick_data(run, model, data, num_data, data_dir, split)
    check_memory(len(x) * draws * 3 * _numel(model.config.x_shape) * 4, f"--posterior with --num-data {len(x)} and --draws {draws}",
                 "ask for fewer --num-data or --draws")
    idata = posterior_idata(model, x, y, num_draws=draws, seed=seed, datum_index=index)
    with output_lock(out):
        return record_output(save_idata(idata, out), "sample", run)


def sample_prior(run: str | Path, num: int, out: str | Path, *, seed: int = 0, zoom: int | None = None, overwrite: bool = False) -> Path:
    """Write ``num`` draws x ~ p(x | z), z ~ p(z), decoded to the mean of p(x|z), to a PNG grid or ``.npy`` ``(num, *x_shape)``.

    For a density fitted on ``latents:RUN`` (e.g. ``gmm``) the draws are latent codes, decoded with RUN's decoder.
    """
    model = _model(run)
    if not isinstance(model, CanSample):
        raise ConfigError(f"model {model.name!r} cannot sample")
    decoder = latent_decoder(model)  # a density fitted on latents:RUN draws codes z, which RUN's decoder turns into x
    shown = decoder or model
    out = _check_out(shown, out, num, overwrite, run=run, zoom=zoom)
    images = model.sample(num, generator=torch.Generator().manual_seed(seed))
    if decoder is not None:
        images = decoder.decode(images)
    return _write_images(shown, images, out, zoom=zoom, run=run)


def sample_conditional(run: str | Path, label: str | int, out: str | Path, *, num: int = 10, seed: int = 0, zoom: int | None = None,
                       overwrite: bool = False) -> Path:
    """Write class-conditional samples x ~ p(x | y=label, z), z ~ p(z), to a PNG grid or ``.npy``.

    ``label`` is a class number or ``"all"``; with ``"all"`` the PNG has one row of ``num`` samples per class
    and the ``.npy`` array has shape ``(K, num, *x_shape)``; one class gives ``(num, *x_shape)``.
    """
    model = require_labels(_model(run), "--label")
    labels = parse_labels(label, model.num_classes)
    out = _check_out(model, out, num * len(labels), overwrite, run=run, zoom=zoom)
    generator = torch.Generator().manual_seed(seed)
    images = np.stack([model.sample(num, label=k, generator=generator) for k in labels])
    return _write_images(model, images if len(labels) > 1 else images[0], out, ncol=num, zoom=zoom, run=run)


def sample_analogies(run: str | Path, style_from: str, out: str | Path, *, num_data: int | None = 10,
                     data_dir: str | None = None, split: str = "all", zoom: int | None = None, overwrite: bool = False) -> Path:
    """Write the analogies grid: each input image's z (from the guide) decoded with every class y.

    The PNG has one row per input image: the input, then classes ``0..K-1``. The ``.npy`` array has shape
    ``(N, K, *x_shape)``. z is the guide's mean given the data's labels when it has them (else the predicted
    class), so the output needs no seed.
    """
    model = require_labels(_model(run), "--style-from")
    out = _check_out(model, out, 1, overwrite, run=run)
    x, y, _ = pick_data(run, model, style_from, num_data, data_dir, split)
    if y is not None and int(y.max()) >= model.num_classes:
        raise DataError(f"--style-from data has labels up to {int(y.max())} but the model has classes 0..{model.num_classes - 1}; give data like the training data")
    decoded = np.asarray(model.decode_with_labels(x, y))
    if Path(out).suffix == ".npy":
        return _write_images(model, decoded, out, run=run)
    rows = np.concatenate([x.cpu().numpy()[:, None], decoded], axis=1)  # input first, then one column per class
    return _write_images(model, rows, out, ncol=model.num_classes + 1, zoom=zoom, run=run)


def sample_interpolation(run: str | Path, out: str | Path, *, num: int = 8, steps: int = 10, seed: int = 0, zoom: int | None = None,
                         overwrite: bool = False) -> Path:
    """Write ``num`` rows of ``steps`` images decoded from codes on the straight line between two prior draws
    (a PNG grid, a row per pair, or ``.npy`` ``(num, steps, *x_shape)``)."""
    model = require_codes(_model(run), "--interpolate")
    check_int(steps, "--steps", minimum=2)
    out = _check_out(model, out, num * steps, overwrite, run=run, zoom=zoom)
    codes = np.asarray(model.sample_codes(2 * num, generator=torch.Generator().manual_seed(seed)), dtype=np.float32)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    line = (1 - t) * codes[:num, None] + t * codes[num:, None]  # (num, steps, z_dim)
    images = np.asarray(model.decode(line.reshape(num * steps, -1))).reshape(num, steps, *model.config.x_shape)
    return _write_images(model, images, out, ncol=steps, zoom=zoom, run=run)


def sample_analogy(run: str | Path, expression: str, out: str | Path, *, num: int = 64, seed: int = 0, variations: int = 8,
                   noise: float = 0.25, zoom: int | None = None, overwrite: bool = False) -> Path:
    """Latent arithmetic: the codes of each group of prior draws averaged (sample numbers of the grid that
    ``ppmodels sample RUN grid.png --seed SEED --num NUM`` draws), combined as ``expression`` says ("A - B + C"), and
    the result decoded with ``variations - 1`` more codes around it (Gaussian noise of scale ``noise``, as DC-GAN's
    Figure 7 shows). The PNG has a row per group (its members, then its mean code decoded) and a last row of results;
    ``.npy`` holds the results ``(variations, *x_shape)``."""
    model = require_codes(_model(run), "--analogy")
    check_int(variations, "variations", minimum=1)
    terms = parse_analogy(expression, num)
    out = _check_out(model, out, num + variations, overwrite, run=run, zoom=zoom)
    codes = np.asarray(model.sample_codes(num, generator=torch.Generator().manual_seed(seed)), dtype=np.float32)
    means = [codes[indices].mean(0) for _, indices in terms]
    result = sum(sign * mean for (sign, _), mean in zip(terms, means))
    around = noise * torch.randn(variations - 1, codes.shape[1], generator=torch.Generator().manual_seed(seed + 1)).numpy()
    results = np.asarray(model.decode(np.concatenate([result[None], result + around]).astype(np.float32)))
    if Path(out).suffix == ".npy":
        return _write_images(model, results, out, run=run)
    ncol = max(variations, *(len(indices) + 1 for _, indices in terms))
    rows = [np.asarray(model.decode(np.concatenate([codes[indices], mean[None]]))) for (_, indices), mean in zip(terms, means)]
    rows.append(results)
    blank = np.ones((1, *model.config.x_shape), dtype=np.float32)  # the grid's padding colour
    grid = np.concatenate([np.concatenate([row, *[blank] * (ncol - len(row))]) for row in rows])
    return _write_images(model, grid, out, ncol=ncol, zoom=zoom, run=run)


def sample(run: str | Path, out: str | Path, *, num: int | None = None, seed: int = 0, zoom: int | None = None, posterior: bool = False,
           data: str | None = None, num_data: int | None = 10, draws: int = 100, split: str = "all", data_dir: str | None = None,
           label: str | int | None = None, style_from: str | None = None, interpolate: bool = False, steps: int = 10,
           analogy: str | None = None, overwrite: bool = False) -> Path:
    """Draw samples from run ``run`` (or a fitted model) into ``out``, in one mode: the prior (default), the posterior
    (``posterior=True`` with ``data``), one class or every class (``label``), analogies (``style_from``),
    interpolations (``interpolate``: ``num`` rows of ``steps``) or latent arithmetic (``analogy``, on the ``num``
    prior draws of ``seed``). ``num`` defaults to 64 prior samples, 10 per class with ``label`` (a 10 x 10 grid for
    ``label="all"``), 8 rows with ``interpolate``; PNG grids are drawn at a size a person can read (``zoom=None``:
    :func:`ppmodels.plots.readable_zoom`).

    Example::

        ppmodels.train("m2", "digits", out="runs/m2", labels=50, train_config=TrainConfig(epochs=1, min_epoch_steps=0), model_options={"hidden": [64]},
                       progress=False)
        ppmodels.sample("runs/m2", "classes.png", label="all")
    """
    check_seed(seed)
    check_int(zoom, "--zoom", minimum=1, optional=True)
    modes = [name for name, on in (("--posterior", posterior), ("--label", label is not None), ("--style-from", style_from is not None),
                                   ("--interpolate", interpolate), ("--analogy", analogy is not None)) if on]
    if len(modes) > 1:
        raise ConfigError(f"{' and '.join(modes)} are separate modes; give one of them")
    if data is not None and not posterior:
        raise ConfigError("--data applies to --posterior; for analogies give the images with --style-from SPEC")
    if posterior:
        if data is None:
            raise ConfigError("--posterior needs --data SPEC, the data whose latents to draw (e.g. --data digits)")
        return sample_posterior(run, data, out, num_data=num_data, draws=draws, seed=seed, data_dir=data_dir, split=split, overwrite=overwrite)
    if label is not None:
        return sample_conditional(run, label, out, num=10 if num is None else num, seed=seed, zoom=zoom, overwrite=overwrite)
    if interpolate:
        return sample_interpolation(run, out, num=8 if num is None else num, steps=steps, seed=seed, zoom=zoom, overwrite=overwrite)
    if analogy is not None:
        return sample_analogy(run, analogy, out, num=64 if num is None else num, seed=seed, zoom=zoom, overwrite=overwrite)
    if style_from is not None:
        return sample_analogies(run, style_from, out, num_data=num_data, data_dir=data_dir, split=split, zoom=zoom, overwrite=overwrite)
    return sample_prior(run, 64 if num is None else num, out, seed=seed, zoom=zoom, overwrite=overwrite)


def _model(run):
    if isinstance(run, PPModel):
        return run
    return load(run)


def _check_out(model, out: str | Path, num: int, overwrite: bool = False, run=None, zoom: int | None = None) -> Path:
    """The output path, checked before drawing: suffix, what it would replace, and the memory ``num`` images need."""
    check_int(num, "--num", minimum=1)
    out = check_output(out, (".png", ".npy"), overwrite=overwrite, command="sample", run=run)
    if out.suffix == ".png" and len(model.config.x_shape) != 3:
        raise DataError(f"--out {out.name}: PNG needs image data (C x H x W) but the model's data has shape {model.config.x_shape}; write .npy instead")
    # the draws, their latents and the decoded means are held at once, a few copies of num x features floats
    check_memory(num * 3 * _numel(model.config.x_shape) * 4, f"{num} samples", "ask for fewer with --num")
    if out.suffix == ".png":  # the grid: every pixel zoom x zoom times (at most the readable default), float64 and 8-bit RGB
        scale = zoom or -(-CELL_PX // max(int(d) for d in model.config.x_shape[-2:]))
        check_memory(num * _numel(model.config.x_shape) * scale ** 2 * 11, f"a PNG grid of {num} samples at --zoom {zoom or 1}",
                     "ask for fewer with --num or a smaller --zoom, or write .npy")
    return out


def _numel(shape) -> int:
    return int(np.prod([int(d) for d in shape]))


def _write_images(model, images: np.ndarray, out: str | Path, ncol: int | None = None, zoom: int | None = None, run=None) -> Path:
    out = Path(out)
    with output_lock(out):
        if out.suffix == ".npy":
            write_arrays(out, images.astype(np.float32))
        else:
            save_image_grid(images.reshape(-1, *model.config.x_shape), out, ncol=ncol, zoom=zoom)
        return record_output(out, "sample", run)
