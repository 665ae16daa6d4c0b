"""Figures of issue 15: PPCA against its closed form after default training, and how k-hat shares repeat over seeds.

    OMP_NUM_THREADS=1 python -P benchmarks/trust.py --out runs/bench_trust               # both parts
    OMP_NUM_THREADS=1 python -P benchmarks/trust.py --out runs/bench_trust --only ppca   # part 1, into the same JSON

1. PPCA: ``ppmodels train ppca`` with default options (EM from a random start) on synthetic 20-D data with a 4-D
   signal (2000 rows) and on digits (K = 2), from the random start (the default) and from the closed form; the run
   summary's largest principal angle to the closed-form subspace, log-likelihood gap and sigma^2, and the R^2 of the
   posterior means against the top-K PCA scores (all training rows).
2. k-hat: a digits VAE (Bernoulli likelihood, 40 epochs), the 360 test images, 4 seeds of the guide draws at 200, 1000
   and 2000 draws: the share above the draw-dependent cut with its Monte Carlo error, whether the verdicts agree, the
   spread of the shares, the correlation of per-datum k-hats between seeds and the overlap of the 10 worst images.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyro
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression

import ppmodels
from ppmodels.analysis import diagnostics as dg
from ppmodels.commands.train import train
from ppmodels.infer import TrainConfig

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic(path: Path) -> str:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(20, 4)) * np.array([3.0, 2.5, 2.0, 1.5])
    x = rng.normal(size=(2000, 4)) @ w.T + rng.normal(size=(2000, 20)) + 2.0
    np.savez(path, x=x.astype(np.float32))
    return f"npz:{path}"


def ppca_figures(spec: str, z_dim: int, init: str, out: Path) -> dict:
    model, summary = train("ppca", spec, out, model_options={"z_dim": z_dim, "init": init}, overwrite=True, progress=False, sample_every=0)
    x = np.asarray(ppmodels.load_dataset(spec).x).reshape(-1, model.weight.shape[0])
    scores, codes = PCA(z_dim).fit_transform(x), model.transform(x)
    return {"closed_form_angle_deg": summary["closed_form_angle_deg"], "log_likelihood_gap": summary["closed_form_log_likelihood_gap"],
            "optimizer": model.config.optimizer, "best_epoch": summary["best_epoch"],
            "noise_variance": summary["noise_variance"], "closed_form_noise_variance": summary["closed_form_noise_variance"],
            "r2_against_pca_scores": float(LinearRegression().fit(codes, scores).score(codes, scores)), "epochs": summary["epochs"]}


def khat_figures(run: Path, draws: list[int], seeds: int = 4) -> dict:
    model = ppmodels.load(run)
    x = model.check_x(ppmodels.load_dataset("digits").split("test").x)
    figures = {}
    for s in draws:
        results = []
        for seed in range(seeds):
            pyro.set_rng_seed(seed)
            lw = torch.cat([model.log_importance_weights(xb, s) for xb in x.split(50)], dim=1).T.numpy()
            results.append(dg.pareto_khat(lw, seed=seed))
        shares = [r["frac_above_threshold"] for r in results]
        pairs = [(i, j) for i in range(seeds) for j in range(i + 1, seeds)]
        verdicts = {dg.khat_verdict(r, "test images").split(": ")[1] for r in results}
        figures[str(s)] = {
            "threshold": results[0]["threshold"], "shares": shares, "spread_points": 100 * (max(shares) - min(shares)),
            "mc_se": [r["frac_above_threshold_mc_se"] for r in results], "data_se": [r["frac_above_threshold_se"] for r in results],
            "verdicts_agree": len(verdicts) == 1,
            "khat_correlation": [float(np.corrcoef(results[i]["khat"], results[j]["khat"])[0, 1]) for i, j in pairs],
            "worst10_overlap": [len({w["datum"] for w in results[i]["worst"]} & {w["datum"] for w in results[j]["worst"]}) for i, j in pairs],
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/bench_trust", help="folder for the runs")
    parser.add_argument("--json", type=Path, default=RESULTS / "trust.json", help="where the figures go (a part run alone replaces its own keys)")
    parser.add_argument("--only", choices=["ppca", "khat"], default=None, help="run one part only")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    figures = json.loads(args.json.read_text()) if args.only and args.json.is_file() else {}
    if args.only in (None, "ppca"):
        spec = synthetic(out / "synth.npz")
        figures.update({f"ppca_{name}_{init}": ppca_figures(data, k, init, out / f"ppca_{name}_{init}")
                        for name, data, k in (("synthetic_D20_K4", spec, 4), ("digits_K2", "digits", 2)) for init in ("closed_form", "random")})
        figures["ppca_defaults"] = "optimizer=em (EM from the init named in the key; random is the default)"
    if args.only in (None, "khat"):
        vae = out / "vae_bernoulli"
        train("vae", "digits", vae, model_options={"likelihood": "bernoulli"}, train_config=TrainConfig(epochs=40), overwrite=True,
              progress=False, sample_every=0)
        figures["khat_vae_digits"] = khat_figures(vae, [200, 1000, 2000])
    figures[f"wall_time_s{'_' + args.only if args.only else ''}"] = round(time.perf_counter() - start, 1)
    print(json.dumps(figures, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
