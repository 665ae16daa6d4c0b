"""M1, the latent-feature discriminative model (Kingma et al. 2014): VAE features plus a classifier."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import model_validator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import SVC

from ..config import Field, IntList, config_dataclass
from ..data import TrainData
from ..errors import ConfigError, DataError, RunError
from ..registry import register_model
from .vae import VAE, VAEConfig

CLASSIFIERS = ("label_spreading", "svm", "logistic")
FEATURES = ("loc", "sample")
CLASS_WEIGHTS = ("none", "balanced")


@config_dataclass
class M1Config(VAEConfig):
    """M1's defaults follow the paper's M1 features (50 latent dimensions, 500 hidden units; measured on digits-50:
    0.933 test accuracy against 0.909 with the VAE's 10 and 256-256)."""

    z_dim: int = Field(50, ge=1, description="latent size.")
    hidden: IntList = Field(default_factory=lambda: [500], description="hidden layer sizes of encoder and decoder (``[]``: linear maps).")
    num_classes: int = Field(10, ge=2, description="number of classes K.")
    classifier: Literal[CLASSIFIERS] = Field("label_spreading", description="``label_spreading`` (transductive: labels spread over a "
                                             "k-nearest-neighbour graph of the latent features of every training image, labeled or not, "
                                             "as Kingma et al. used a transductive SVM), ``svm`` (RBF SVC on the labeled images only) "
                                             "or ``logistic``.")
    neighbors: int = Field(10, ge=1, description="k of the label-spreading graph.")
    features: Literal[FEATURES] = Field("loc", description="``loc`` (posterior means) or ``sample`` (draws from q(z|x), "
                                        "``num_feature_samples`` per labeled image; not with label spreading).")
    num_feature_samples: int = Field(10, ge=1, description="draws per labeled image with ``features=sample``.")
    C: float = Field(10.0, gt=0, description="inverse regularisation of ``svm`` and ``logistic``.")
    class_weight: Literal[CLASS_WEIGHTS] = Field("none", description="``none``, or ``balanced`` to weight each labeled example by "
                                                 "``n / (K * n_class)`` so that a class holding 90% of the labels cannot win by being "
                                                 "predicted everywhere.")

    @model_validator(mode="after")
    def _check_classifier(self) -> M1Config:
        if self.classifier == "label_spreading" and (self.features != "loc" or self.class_weight != "none"):
            raise ConfigError("classifier=label_spreading takes features=loc and class_weight=none; use classifier=svm for the others")
        return self


@register_model("m1")
class M1(VAE):
    """M1: a VAE trained on all images (labeled or not), then a classifier on its latent features.

    Generative story (the VAE's)::

        z ~ Normal(0, I),   x ~ p(x | z)

    Classifier: ``y = g(E[z | x])``, where ``g`` spreads the labels over a k-nearest-neighbour graph of the codes of
    all training images (default), or is an SVM or logistic regression fit on the labeled images only. Its fitted
    state is saved as the features and labels it was fit on (tensors; -1 marks unlabeled) and refit,
    deterministically, on load.

    Example::

        data = prepare_data(load_dataset("digits"), num_labels=50)
        m1 = M1(x_shape=[1, 8, 8], likelihood="binomial:16", hidden=[64]).fit(data, TrainConfig(epochs=3))   # ~50 for real use
        m1.predict(data.test.x)

    Reference: D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling, "Semi-supervised learning with deep generative
    models", NeurIPS 2014, section 3.1.
    """

    Config = M1Config
    config: M1Config
    needs_labels = True
    imbalance_remedy = "--set class_weight=balanced, --max-per-class, or class-balanced labels (--labels)"
    dispersal_remedy = "class_weight=none (with classifier=svm or logistic), or labels in the data's own class shares (--labels draws class-balanced ones)"

    def __init__(self, config: M1Config | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self.classifier_ = self.calibrated_ = None
        self._features = torch.empty(0, self.config.z_dim)
        self._labels = torch.empty(0, dtype=torch.long)

    def after_fit(self, data: TrainData) -> None:
        labeled = data.train.labeled
        if self.config.classifier == "label_spreading":  # every training image takes part, unlabeled ones as -1
            self._fit_classifier(torch.from_numpy(self.transform(data.train.x)), torch.where(labeled, data.train.y, -1))
            return
        x, y = data.train.x[labeled], data.train.y[labeled]
        if self.config.features == "sample":
            loc, scale = (torch.from_numpy(a) for a in self.encode(x))
            gen = torch.Generator().manual_seed(self.config.seed or 0)
            k = self.config.num_feature_samples
            features = loc.repeat(k, 1) + scale.repeat(k, 1) * torch.randn(k * len(loc), loc.shape[1], generator=gen)
            y = y.repeat(k)
        else:
            features = torch.from_numpy(self.transform(x))
        self._fit_classifier(features, y)

    def _fit_classifier(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        c = self.config
        x, y = features.numpy(), labels.numpy()
        weight = None if c.class_weight == "none" else c.class_weight
        if c.classifier == "label_spreading":
            spreading = LabelSpreading(kernel="knn", n_neighbors=min(c.neighbors, len(x) - 1), max_iter=200)
            with np.errstate(invalid="ignore", divide="ignore"):  # a graph component without a label divides 0 by 0
                spreading.fit(x, y)
            # such images carry no label information: uniform over the classes, instead of NaN
            dist = spreading.label_distributions_
            dist[~np.isfinite(dist).all(1)] = 1.0 / dist.shape[1]
            self.classifier_ = self.calibrated_ = spreading
        elif c.classifier == "svm":
            self.classifier_ = make_pipeline(StandardScaler(), SVC(C=c.C, gamma="scale", class_weight=weight)).fit(x, y)
            # Platt-scaled probabilities from cross-validation, where every class has at least two labels
            folds = min(3, int(np.unique(y, return_counts=True)[1].min()))
            self.calibrated_ = CalibratedClassifierCV(self.classifier_, cv=folds, ensemble=False).fit(x, y) if folds >= 2 else None
        else:
            self.classifier_ = make_pipeline(StandardScaler(), LogisticRegression(C=c.C, max_iter=2000, class_weight=weight)).fit(x, y)
            self.calibrated_ = self.classifier_
        self._features, self._labels = features.float(), labels.long()

    def _check_fitted(self) -> None:
        if self.classifier_ is None:
            raise RunError("the M1 classifier is not fitted; call fit() with labeled data first")

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities ``(N, num_classes)`` (classes absent from the labels get probability 0)."""
        self._check_fitted()
        features = self.transform(x)
        full = np.zeros((len(features), self.config.num_classes))
        if self.calibrated_ is None:  # too few labels per class to calibrate: all mass on the SVM's prediction
            full[np.arange(len(features)), self.classifier_.predict(features)] = 1.0
        else:
            full[:, self.calibrated_.classes_] = self.calibrated_.predict_proba(features)
        return full

    def predict(self, x) -> np.ndarray:
        """Predicted labels ``(N,)``."""
        self._check_fitted()
        if len(x) == 0:  # scikit-learn would say "Found array with 0 sample(s)" from deep inside
            raise DataError("predict got no examples; give at least one")
        return self.classifier_.predict(self.transform(x))

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {"classifier_features": self._features, "classifier_labels": self._labels}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "classifier_features" not in tensors or len(tensors["classifier_features"]) == 0:
            return
        self._fit_classifier(tensors["classifier_features"], tensors["classifier_labels"])
