"""Models of another run's latent space: the data source ``latents:RUN``, and GMVAE's start from such a fit.

``ppmodels train gmm --data latents:runs/vae`` fits a density to the codes ``E[z | x]`` of the data ``runs/vae`` was
trained on (same spec and options, same splits, same labels, same training subset). The dataset remembers the run
in ``metadata["decoder_run"]``, so a model fitted on it can decode its samples with that run's decoder.
"""

from __future__ import annotations

from pathlib import Path

from ..data import Dataset, map_rows, register_source
from ..errors import ConfigError, DataError
from ..models import GMM, GMVAE, CanEncode, CanStyle
from .data import latent_decoder, open_run_dataset
from .folder import load


@register_source("latents", options=())
def _latents(path: str, options: dict, **_) -> Dataset:
    """Posterior means of q(z | x) for every datum of the run's training data, with its splits and labels."""
    if not path:
        raise DataError("the spec latents:RUN names no run folder; write it as latents:runs/vae")
    model = load(path)
    if not isinstance(model, CanEncode):
        style = " (its z is inferred given a class, q(z|x,y))" if isinstance(model, CanStyle) else ""
        raise DataError(f"run {path} holds model {model.name!r}, which has no q(z|x){style}; latents:RUN needs a model with q(z|x), such as vae or m1")
    source = open_run_dataset(path)
    z_loc, _ = map_rows(model.encode, source.x)
    return Dataset(f"latents of {Path(path).name}", z_loc, source.y, "gaussian", dict(source.splits),
                   class_names=source.class_names, metadata={"decoder_run": str(Path(path).resolve())})


def start_gmvae_from_runs(model: GMVAE) -> GMVAE:
    """VaDE's start for a GMVAE whose config names ``init_from`` (a ``gmm`` run fitted on ``latents:VAE_RUN``): the
    encoder and decoder of VAE_RUN and the prior of the mixture. A model without ``init_from`` is left as it is."""
    run = model.config.init_from
    if not run:
        return model
    mixture = load(run)
    vae = latent_decoder(mixture)
    if vae is None or not isinstance(mixture, GMM):
        raise ConfigError(f"init_from={run} is not a gmm run fitted on latents:RUN; train one with `ppmodels train gmm --data latents:RUN`")
    model.start_from(vae.state_dict(), mixture)
    return model
