"""A user-defined model in one file: a VAE whose likelihood is a Student-t, robust to outlying pixels or features.

Generative story, for each datum::

    z ~ Normal(0, I)                                  (z_dim)
    x ~ StudentT(df, loc = f(z), scale = sigma)       (x_shape; sigma learned per feature, df fixed)

Guide: ``q(z | x) = Normal(mu(x), sigma(x))``. Objective: the ELBO, trained by ppmodels' shared trainer.

Train it from the shell by naming this file with the app-wide ``--plugin`` option, before the command::

    ppmodels --plugin docs/examples/student_t_vae.py train student_t_vae --data digits --out runs/student-t
    ppmodels --plugin docs/examples/student_t_vae.py sample runs/student-t --out student-t.png

or from Python: ``ppmodels.train("student_t_vae", "digits", out=..., plugins=[PATH])``. The run records this file,
but loading the run never imports it on its own (a run folder runs no code): pass ``--plugin`` again, or call
``ppmodels.import_plugin(PATH)`` before ``ppmodels.load(RUN)``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppmodels import register_model
from ppmodels.config import Field, IntList, config_dataclass
from ppmodels.models import ModelConfig, PPModel, data_plate
from ppmodels.nets import Decoder, GaussianEncoder, flatten_event


@config_dataclass
class StudentTVAEConfig(ModelConfig):
    """The options: each field declared once, with its type, default, bounds and meaning (``ppmodels models
    student_t_vae`` lists them; a wrong value is one ConfigError line)."""

    z_dim: int = Field(8, ge=1, description="latent size.")
    hidden: IntList = Field(default_factory=lambda: [128], description="hidden layer sizes.")
    df: float = Field(4.0, gt=0, description="degrees of freedom of the likelihood.")
    likelihood: str = Field("student_t", description="p(x | z): always a Student-t.")
    likelihoods: ClassVar[tuple[str, ...]] = ("student_t",)


@register_model("student_t_vae")
class StudentTVAE(PPModel):
    """VAE with a Student-t likelihood (sites ``z`` (N, z_dim) and ``x`` (N, *x_shape) under the plate ``data``)."""

    Config = StudentTVAEConfig

    @classmethod
    def config_from_data(cls, dataset, **options):
        # the likelihood is always a Student-t: the data's hint (bernoulli, binomial:16, gaussian) does not apply
        return super().config_from_data(dataset, **{**options, "likelihood": options.get("likelihood") or "student_t"})

    def __init__(self, config: StudentTVAEConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.encoder = GaussianEncoder(math.prod(c.x_shape), c.hidden, c.z_dim, "relu")
        self.decoder = Decoder(c.z_dim, list(reversed(c.hidden)), c.x_shape, "relu")
        self.x_log_scale = nn.Parameter(torch.full(c.x_shape, -2.0))

    def model(self, x=None, num_data=None, batch_size=None):
        pyro.module(self.pyro_name, self)  # this instance's own name: two models never share parameters
        n = len(x) if x is not None else batch_size or 1
        with data_plate(n, num_data, self.device):
            z = pyro.sample("z", dist.Normal(torch.zeros(n, self.config.z_dim, device=self.device), 1.0).to_event(1))
            loc = self.decoder(z)
            x_dist = dist.StudentT(self.config.df, loc, self.x_log_scale.exp().expand_as(loc)).to_event(self.x_event_dim)
            return pyro.sample("x", x_dist, obs=x)

    def guide(self, x, num_data=None, batch_size=None):
        pyro.module(self.pyro_name, self)  # this instance's own name: two models never share parameters
        with data_plate(len(x), num_data, x.device):
            loc, scale = self.encoder(flatten_event(x, self.config.x_shape))
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    @torch.no_grad()
    def encode(self, x) -> tuple[np.ndarray, np.ndarray]:
        """``(z_loc, z_scale)`` of q(z|x), each ``(N, z_dim)`` (``ppmodels encode`` writes these)."""
        x = self.check_x(x)
        with self.evaluating():
            loc, scale = self.encoder(flatten_event(x, self.config.x_shape))
        return loc.cpu().numpy(), scale.cpu().numpy()

    def transform(self, x) -> np.ndarray:
        """Posterior means of z: ``(N, z_dim)``."""
        return self.encode(x)[0]

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` prior draws decoded to the location of p(x|z): ``(num, *x_shape)``."""
        z = torch.randn(num, self.config.z_dim, generator=generator).to(self.device)
        with self.evaluating():
            return self.decoder(z).cpu().numpy()
