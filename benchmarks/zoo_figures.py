"""Figures for the zoo of issue 5: PPCA against its closed form, GMM parameter recovery, GMVAE clustering on digits.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/zoo_figures.py --out runs/bench_zoo
Prints the figures and writes them to OUT/zoo.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import subspace_angles
from scipy.optimize import linear_sum_assignment
from sklearn.mixture import GaussianMixture

import ppmodels
from ppmodels.data import TrainData, from_arrays, prepare_data
from ppmodels.models import GMM, PPCA
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit


def ppca_figures(x: np.ndarray, k: int, epochs: int) -> dict:
    """Largest principal angle (degrees) and relative noise-variance error of a PPCA fit against the eigendecomposition."""
    full = prepare_data(from_arrays("ppca", x.astype(np.float32), likelihood="gaussian"))
    data = TrainData(full.dataset, full.train, None, None)
    xt = data.train.x.reshape(len(data.train), -1).numpy().astype(np.float64)
    eigval, eigvec = np.linalg.eigh(np.cov(xt.T, bias=True))
    eigval, eigvec = eigval[::-1], eigvec[:, ::-1]
    torch.manual_seed(0)
    model = fit(PPCA(x_shape=list(x.shape[1:]), z_dim=k, init="random"), data, TrainConfig(epochs=epochs, batch_size=len(xt), lr=0.05, patience=None))
    angles = np.degrees(subspace_angles(model.components_, eigvec[:, :k]))
    noise = eigval[k:].mean()
    return {"max_principal_angle_deg": float(angles.max()), "mean_principal_angle_deg": float(angles.mean()),
            "noise_variance": model.noise_variance_, "noise_variance_closed_form": float(noise),
            "noise_variance_rel_error": abs(model.noise_variance_ - noise) / noise}


def gmm_figures() -> dict:
    rng = np.random.default_rng(0)
    means, scales, weights = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 6.0]]), np.array([[1.0, 0.5], [0.7, 0.7], [0.5, 1.5]]), np.array([0.5, 0.3, 0.2])
    k = rng.choice(3, size=1500, p=weights)
    x = (means[k] + scales[k] * rng.normal(size=(1500, 2))).astype(np.float32)
    data = prepare_data(from_arrays("gmm", x))
    torch.manual_seed(0)
    gmm = fit(GMM(x_shape=[2], num_components=3), data, TrainConfig(epochs=100, batch_size=len(data.train), lr=0.02, patience=None))
    em = GaussianMixture(3, covariance_type="diag", random_state=0).fit(data.train.x.numpy())
    out = {}
    for name, (m, w) in {"truth": (means, weights), "em": (em.means_, em.weights_)}.items():
        cost = ((gmm.means_[:, None] - m[None]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        out[f"max_mean_error_vs_{name}"] = float(np.sqrt(cost[rows, cols]).max())
        out[f"max_weight_error_vs_{name}"] = float(np.abs(gmm.weights_[rows] - w[cols]).max())
        if name == "truth":
            out["max_scale_error_vs_truth"] = float(np.abs(gmm.scales.detach().numpy()[rows] - scales[cols]).max())
    return out


def gmvae_figures(out: Path, seeds: list[int], epochs: int) -> dict:
    """Test clustering accuracy on digits of: a GMVAE from scratch; a GMM on a VAE's codes; a GMVAE started from
    that VAE and GMM (VaDE's recipe, ``init_from``). Same nets (z_dim 5, one hidden layer of 256), K = 10."""
    nets = {"z_dim": 5, "hidden": [256]}
    results: dict[str, list[float]] = {"gmvae_scratch": [], "vae_then_gmm": [], "gmvae_init_from_vae_gmm": []}

    def run(model: str, data: str, name: str, seed: int, lr: float = 1e-3, batch: int = 100, **options) -> dict:
        torch.manual_seed(seed)
        return ppmodels.train(model, data, out / f"{name}_{seed}", overwrite=True, progress=False, sample_every=0,
                              train_config=TrainConfig(epochs=epochs, batch_size=batch, lr=lr, patience=30, seed=seed),
                              model_options=options)[1]

    for seed in seeds:
        results["gmvae_scratch"].append(run("gmvae", "digits", "gmvae", seed, num_components=10, **nets)["test_cluster_accuracy"])
        run("vae", "digits", "vae", seed, **nets)
        gmm = run("gmm", f"latents:{out / f'vae_{seed}'}", "gmm", seed, lr=0.02, batch=2000, num_components=10)
        results["vae_then_gmm"].append(gmm["test_cluster_accuracy"])
        init = run("gmvae", "digits", "gmvae_init", seed, num_components=10, init_from=str(out / f"gmm_{seed}"), **nets)
        results["gmvae_init_from_vae_gmm"].append(init["test_cluster_accuracy"])
    return {**{k: {"per_seed": v, "mean": float(np.mean(v))} for k, v in results.items()}, "epochs": epochs, **nets}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/bench_zoo")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--gmvae-epochs", type=int, default=100)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 2)) * np.array([3.0, 1.5])
    toy = rng.normal(size=(1000, 2)) @ w.T + 0.5 * rng.normal(size=(1000, 8)) + 1.0
    digits = ppmodels.load_dataset("digits").x.reshape(-1, 64)
    figures = {
        "ppca_synthetic_D8_K2": ppca_figures(toy, 2, epochs=1000),
        "ppca_digits_D64_K10": ppca_figures(digits, 10, epochs=2000),
        "gmm_synthetic_K3": gmm_figures(),
        "gmvae_digits_K10": gmvae_figures(out, [int(s) for s in args.seeds.split(",")], args.gmvae_epochs),
    }
    figures["wall_time_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(figures, indent=2))
    (out / "zoo.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
