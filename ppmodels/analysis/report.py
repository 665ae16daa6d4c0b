"""``report.html``: the diagnostics of a run on one self-contained page a person reads without code.

Every figure is a matplotlib PNG embedded as base64, so the file can be mailed or archived alone. Each section
opens with the plain-language verdict of :func:`ppmodels.diagnostics.verdicts` and ends with what to look for.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .diagnostics import KHAT_GOOD, VERDICT_TITLES, continuous_latents
from ..files import atomic_write
from ..models import CanReconstruct, CanSample, LabeledGenerator
from ..plots import tile

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ccc;padding-bottom:.2em}
.verdict{background:#f4f6fb;border-left:4px solid #4a6fa5;padding:.6em 1em;margin:.6em 0}
.hint{color:#555;font-size:.92em}table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}img{max-width:100%;height:auto}
.fig{margin:.8em 0}"""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_html(draw: Callable[[Any], None], size: tuple[float, float], alt: str, ncols: int = 1, nrows: int = 1) -> str:
    """Run ``draw(axes)`` on a new figure (one axes, or a flat array of them) and return an ``<img>`` with the PNG embedded."""
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
    try:
        draw(axes.ravel() if axes.size > 1 else axes[0, 0])
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<div class="fig"><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></div>'


def show_images(ax, images: np.ndarray, ncol: int, title: str) -> None:
    grid = tile(np.clip(images, 0, 1), ncol)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")


# ----- figures ------------------------------------------------------------------------------------------------
def elbo_figure(conv: dict) -> str:
    def draw(ax):
        ax.plot(conv["epochs"], conv["train_elbo"], marker=".", label="train ELBO")
        if conv.get("valid_elbo"):
            ax.plot(conv["epochs"], [np.nan if v is None else v for v in conv["valid_elbo"]], marker=".", label="validation ELBO")
        for stage, start in list(conv.get("stage_starts", {}).items())[1:]:
            ax.axvline(start - 0.5, color="black", linewidth=1)
            ax.annotate(f"stage {stage}", (start - 0.4, 0.03), xycoords=("data", "axes fraction"), fontsize=8)
        if conv.get("best_epoch") is not None:
            ax.axvline(conv["best_epoch"], color="grey", linestyle=":", label=f"best epoch {conv['best_epoch']}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("ELBO per datum (nats)")
        ax.legend()

    return figure_html(draw, (7, 3.6), "ELBO by epoch")


def khat_figure(khat: np.ndarray, threshold: float) -> str:
    finite = np.where(np.isfinite(khat), khat, np.nan)

    def draw(axes):
        axes[0].scatter(np.arange(len(khat)), finite, s=8, c=np.where(finite > threshold, "tab:red", np.where(finite > KHAT_GOOD, "tab:orange", "tab:blue")))
        axes[1].hist(finite[np.isfinite(finite)], bins=30, color="tab:blue")
        for ax in axes:
            for level, style in ((KHAT_GOOD, "--"), (threshold, "-")):
                (ax.axhline if ax is axes[0] else ax.axvline)(level, color="tab:red", linestyle=style, linewidth=1)
        axes[0].set(xlabel="datum", ylabel="Pareto k-hat", title="k-hat per datum")
        axes[1].set(xlabel="Pareto k-hat", ylabel="number of data", title="distribution")

    return figure_html(draw, (10, 3.4), "Pareto k-hat per datum", ncols=2)


def gap_figure(per_datum: dict) -> str:
    def draw(axes):
        axes[0].scatter(per_datum["elbo"], per_datum["iw"], s=8)
        lo, hi = float(np.min(per_datum["elbo"])), float(np.max(per_datum["iw"]))
        axes[0].plot([lo, hi], [lo, hi], color="grey", linewidth=1, label="IW = ELBO")
        axes[0].set(xlabel="ELBO per datum (nats)", ylabel="importance-weighted log p(x)", title="bound vs ELBO")
        axes[0].legend()
        axes[1].hist(per_datum["gap"], bins=30, color="tab:green")
        axes[1].set(xlabel="IW - ELBO (nats)", ylabel="number of data", title="the guide's slack per datum")

    return figure_html(draw, (10, 3.4), "importance-weighted bound against the ELBO", ncols=2)


def pit_figure(pit: dict, errors: np.ndarray, train_errors: np.ndarray | None, x_shape: list[int]) -> str:
    image = len(x_shape) == 3

    def draw(axes):
        if pit.get("histogram") is not None:
            edges, heights = np.array(pit["edges"]), np.array(pit["histogram"])
            axes[0].bar(edges[:-1], heights, width=np.diff(edges), align="edge", color="tab:purple", edgecolor="white")
            axes[0].axhline(1.0, color="grey", linestyle="--", linewidth=1, label="uniform")
            axes[0].legend(loc="lower center")
        axes[0].set(xlabel="PIT", ylabel="density", title="PIT of uncertain features")
        bins = np.histogram_bin_edges(np.concatenate([errors] + ([train_errors] if train_errors is not None else [])), bins=30)
        axes[1].hist(errors, bins=bins, alpha=0.6, density=True, label="diagnosed data")
        if train_errors is not None:
            axes[1].hist(train_errors, bins=bins, alpha=0.6, density=True, label="training data")
        axes[1].set(xlabel="-E_q log p(x|z) (nats)", ylabel="density", title="reconstruction error")
        axes[1].legend()
        if image:
            bias = np.asarray(pit["feature_mean"]).reshape(x_shape)[0] - 0.5
            shown = axes[2].imshow(bias, cmap="RdBu_r", vmin=-0.25, vmax=0.25)
            axes[2].figure.colorbar(shown, ax=axes[2], fraction=0.046)
            axes[2].set(title="mean PIT - 0.5 per pixel")
            axes[2].axis("off")

    return figure_html(draw, (13 if image else 10, 3.4), "posterior predictive checks", ncols=3 if image else 2)


def latent_figure(points: np.ndarray, labels: np.ndarray | None, name: str) -> str:
    from sklearn.decomposition import PCA

    how = "posterior means"
    if points.shape[1] > 2:
        pca = PCA(2).fit(points)
        points = pca.transform(points)
        how = f"PCA of posterior means ({100 * pca.explained_variance_ratio_.sum():.0f}% of variance)"
    elif points.shape[1] == 1:
        points = np.column_stack([points[:, 0], np.zeros(len(points))])

    def draw(ax):
        colours = {"c": labels, "cmap": "tab10"} if labels is not None else {"color": "tab:blue"}
        scatter = ax.scatter(points[:, 0], points[:, 1], s=8, **colours)
        if labels is not None:
            ax.legend(*scatter.legend_elements(), title="label", loc="center left", bbox_to_anchor=(1, 0.5), fontsize=8)
        ax.set(title=f"{name}: {how}", xlabel="axis 1", ylabel="axis 2")

    return figure_html(draw, (6.5, 5), f"latent space {name}")


def classifier_figure(cal: dict, matrix: np.ndarray) -> str:
    def draw(axes):
        bins = [b for b in cal["bins"] if b["count"]]
        mids = [(b["low"] + b["high"]) / 2 for b in bins]
        width = cal["bins"][0]["high"] - cal["bins"][0]["low"]
        axes[0].bar(mids, [b["accuracy"] for b in bins], width=width * 0.9, color="tab:blue", label="accuracy")
        axes[0].plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
        axes[0].scatter(mids, [b["confidence"] for b in bins], color="tab:red", zorder=3, s=12, label="mean confidence")
        for m, b in zip(mids, bins):
            axes[0].annotate(str(b["count"]), (m, 0.02), ha="center", fontsize=7)
        axes[0].set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (largest q(y|x))", ylabel="accuracy",
                    title=f"reliability diagram (ECE {cal['ece']:.3f})")
        axes[0].legend(loc="upper left", fontsize=8)
        axes[1].imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                axes[1].text(j, i, str(count), ha="center", va="center", fontsize=7, color="white" if count > matrix.max() / 2 else "black")
        axes[1].set(xlabel="predicted", ylabel="true", title="confusion matrix", xticks=range(len(matrix)), yticks=range(len(matrix)))

    return figure_html(draw, (11, 4.6), "calibration and confusion matrix", ncols=2)


def images_figure(rows: list[tuple[str, np.ndarray]], ncol: int, alt: str) -> str:
    """One titled grid of images per row of the figure."""
    per_row = max(1.0, 10 / ncol * max(1, -(-len(rows[0][1]) // ncol)))

    def draw(axes):
        for ax, (title, images) in zip(np.atleast_1d(axes), rows):
            show_images(ax, images, ncol, title)

    return figure_html(draw, (10, 0.4 + per_row * len(rows)), alt, nrows=len(rows))


# ----- the page -----------------------------------------------------------------------------------------------
def section(title: str, verdict: str | None, body: str = "", hint: str = "") -> str:
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if verdict:
        parts.append(f'<p class="verdict">{html.escape(verdict)}</p>')
    parts.append(body)
    if hint:
        parts.append(f'<p class="hint">{html.escape(hint)}</p>')
    return "\n".join(parts)


def table(rows: list[tuple[str, str]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>" if header else ""
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return f"<table>{head}{body}</table>"


def class_conditional_samples(model, num_classes: int, per_class: int, seed: int) -> np.ndarray | None:
    """``(num_classes * per_class, *x_shape)`` samples of p(x | y) for models whose ``sample`` takes ``y``, else ``None``."""
    if not isinstance(model, LabeledGenerator):
        return None
    y = torch.arange(num_classes).repeat_interleave(per_class)
    return np.asarray(model.sample(len(y), generator=torch.Generator().manual_seed(seed), y=y))


def fit_sections(model, idata, result: dict) -> list[str]:
    """Reconstructions beside originals and the images with the largest k-hat (models whose guide samples a latent)."""
    x = idata.observed_data["x"].values
    show = min(16, len(x))
    if isinstance(model, CanReconstruct):
        recon, how = np.asarray(model.reconstruct(torch.as_tensor(x[:show]))), "mean of p(x|z) at z = E[z|x]"
    else:  # models with a discrete latent: average the stored posterior predictive draws
        draws = idata.posterior_predictive["x"].values[0, :, :show]
        recon, how = draws.mean(0), f"average of {len(draws)} posterior predictive draws"
    out = [section("Reconstructions", None, images_figure([("originals", x[:show]), (f"reconstructions ({how})", recon)], show, "reconstructions"),
                   "Each reconstruction sits below its original. Blurry but recognisable is normal for a VAE; a wrong digit means the latent code lost it.")]
    khat = result["khat"]["khat"]
    if result["khat"].get("exact"):  # constant weights: no datum is fitted worse than another
        return out
    worst = [i for i in np.argsort(-np.nan_to_num(khat, nan=np.inf, neginf=-1e9))[:show] if not np.isneginf(khat[i])]
    datum = idata.observed_data["datum"].values
    labels = ", ".join(f"#{int(datum[i])} ({khat[i]:.2f})" for i in worst)
    out.append(section("The data the guide fits worst", None, images_figure([("largest k-hat first", x[worst])], show, "worst k-hat images"),
                       f"Index in the split (k-hat), left to right: {labels}. These are the images whose posterior the guide misses most; "
                       "unusual writing styles are expected here."))
    return out


def image_sections(model, idata, result: dict) -> list[str]:
    """Reconstructions and the worst-fitted images (when the guide samples a latent), prior and class-conditional samples."""
    out = fit_sections(model, idata, result) if result.get("guide_samples_latents", True) else []
    rows = []
    if isinstance(model, CanSample):
        rows.append(("prior samples (mean of p(x|z), z ~ p(z))", np.asarray(model.sample(32, generator=torch.Generator().manual_seed(result.get("seed", 0))))))
    num_classes = model.num_classes if isinstance(model, LabeledGenerator) else None
    conditional = class_conditional_samples(model, num_classes, 10, result.get("seed", 0)) if num_classes else None
    if rows:
        out.append(section("Samples from the model", None, images_figure(rows, 16, "prior samples"),
                           "Samples should look like the data. Smudges that are no digit mean the prior has regions the decoder never learned."))
    if conditional is not None:
        out.append(section("Class-conditional samples p(x | y)", None, images_figure([(f"y = {c}", conditional[c * 10:(c + 1) * 10]) for c in range(num_classes)], 10, "class-conditional samples"),
                           "One row per class: each row should show that class in varied styles."))
    return out


def header(result: dict) -> list[str]:
    """The title, what was diagnosed, and the table of verdicts."""
    return [f"<h1>Diagnostics of {html.escape(result['model'])} run {html.escape(Path(result['run']).name)}</h1>",
            table([("run", result["run"]), ("model", result["model"]), ("data", f"{result['data']} ({result['split']} split)"), ("likelihood p(x | latents)", result.get("likelihood", "")),
                   ("data points", str(result["num_data"])), ("guide draws per datum", str(result["particles"]))]),
            "<h2>Verdicts</h2>", table([(VERDICT_TITLES.get(k, k.replace("_", " ")), v) for k, v in result["verdicts"].items()], ("diagnostic", "verdict"))]


def inference_sections(result: dict) -> list[str]:
    """Training convergence, k-hat, and the bound against the ELBO."""
    verdicts, ll = result["verdicts"], result["log_likelihood"]
    out = []
    if result.get("convergence"):
        out.append(section("Training: did the ELBO converge?", verdicts.get("convergence"), elbo_figure(result["convergence"]),
                           "The validation ELBO should rise and level off. A curve still climbing at the end means training stopped too early."))
    # an exact guide (PPCA) or none (the GMM) has constant weights: no k-hat to plot, a slack of rounding noise
    approximate = result.get("guide_samples_latents", True) and not result["khat"].get("exact")
    if approximate:
        cut = result["khat"]["threshold"]
        out.append(section("Did variational inference work? Pareto k-hat per datum", verdicts["khat"], khat_figure(result["khat"]["khat"], cut),
                           "k-hat (Yao et al. 2018) estimates how heavy the tail of the importance weights p(x,z)/q(z|x) is. Below 0.5 (dashed) the guide "
                           f"covers the posterior; above {cut:.2f} (solid: min(1 - 1/log10 S, 0.7) for S draws, as ArviZ) it is too narrow and "
                           "importance sampling from it is unreliable."))
    rows = [("ELBO (guide draws)", "elbo"), ("importance-weighted bound", "iw"), ("PSIS-smoothed bound", "psis"), ("gap (IW - ELBO)", "gap")]
    numbers = table([(label, f"{ll[key]:.3f} +- {ll[key + '_se']:.3f}") for label, key in rows], ("estimate, nats per datum", "mean +- standard error"))
    out.append(section("How tight is the ELBO?" if approximate else "Log-likelihood (exact)", verdicts["log_likelihood"],
                       numbers + (gap_figure(ll["per_datum"]) if approximate else ""),
                       "Points far above the diagonal are data whose posterior the guide approximates poorly." if approximate else ""))
    return out


def latent_sections(idata, result: dict) -> list[str]:
    """One scatter of posterior means per continuous latent, coloured by label."""
    labels = idata.observed_data["y"].values if "y" in idata.observed_data else None
    latents = continuous_latents(idata)
    with_label = "posterior" in idata.groups() and "y" in idata.posterior  # then z (z2 in M1+M2) should hold style, not class
    out = []
    for i, (name, points) in enumerate(latents.items()):
        hint = "Coloured by the true label. Classes that form separate clusters are easy to classify from this latent code."
        if with_label and name == list(latents)[-1]:
            hint = ("Coloured by the true label. The label has its own latent y here, so this style latent should not cluster by "
                    "class: clusters mean the class leaked into it and p(x | y) will hardly depend on y.")
        out.append(section(f"Latent space {name}", result["verdicts"].get("active_units") if i == 0 else None, latent_figure(points, labels, name), hint))
    return out


def check_sections(model, result: dict) -> list[str]:
    """Posterior predictive checks and, for classifiers, calibration and the confusion matrix."""
    verdicts, out = result["verdicts"], []
    if result.get("pit"):
        out.append(section("Posterior predictive checks", verdicts.get("ppc"),
                           pit_figure(result["pit"], result["reconstruction_error"], result.get("train_reconstruction_error"), model.config.x_shape),
                           "Left: where each observed feature falls in its predictive distribution, over the features the model is unsure of (uniform is ideal; "
                           "reconstructing x from itself makes it bunch in the middle). Middle: held-out data reconstructed clearly worse than training "
                           "data means overfitting (or other data). Right (images): red pixels are brighter in the data than the model predicts, blue ones darker."))
    if result.get("calibration"):
        out.append(section("Classifier q(y|x): calibration and confusion", verdicts.get("calibration"),
                           classifier_figure(result["calibration"], np.asarray(result["classification"]["confusion_matrix"])),
                           "Bars below the diagonal: the classifier is more confident than it is accurate. Counts per bin are written at the bottom."))
    return out


def gold_standard_sections(result: dict) -> list[str]:
    """The NUTS gold standard of ``diagnose --nuts`` (ppca, gmm): one row per compared quantity."""
    gold = result.get("gold_standard")
    if not gold:
        return []
    rows = [(name.replace("_", " "), f"NUTS {q['mean']:.4g} +- {q['sd']:.2g} (R-hat {q['rhat']:.3f}, ESS {q['ess']:.0f}, MCSE {q['mcse']:.2g}); "
             + (f"closed form on the same data {q['closed_form']:.4g}, {q['z_closed_form']:+.2f} posterior sds; " if "closed_form" in q else "")
             + f"SVI {q['svi']:.4g}, {q['z']:+.2f} posterior sds") for name, q in gold["quantities"].items()]
    angle_names = {"nuts_vs_closed_form": "NUTS against the closed form, same data", "posterior_spread": "posterior spread (median draw)",
                   "between_chains": "between the chains' means", "fit_vs_closed_form": "SVI fit against the closed form on its training data",
                   "data_subset_shift": "closed form: NUTS subset against all training data", "fit_vs_nuts": "SVI fit against NUTS"}
    rows += [(f"largest subspace angle: {angle_names[key]}", f"{value:.2f} degrees") for key, value in gold.get("angles_deg", {}).items()]
    return [section("Gold standard: NUTS against the SVI fit", result["verdicts"].get("gold_standard"), table(rows, ("quantity", "posterior and fit")),
                    f"NUTS ({gold['num_chains']} chains x {gold['num_samples']} draws, {gold['num_data']} of the {gold.get('num_fit_data', gold['num_data'])} training data; prior {gold['prior']}). "
                    + gold["note"])]


def write_report(path: str | Path, model, idata, result: dict) -> Path:
    """Write ``report.html`` for a :func:`ppmodels.diagnosis.diagnose` result and its InferenceData."""
    parts = header(result) + inference_sections(result)
    if len(model.config.x_shape) == 3:
        parts += image_sections(model, idata, result)
    parts += latent_sections(idata, result) + check_sections(model, result) + gold_standard_sections(result)
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>ppmodels diagnostics</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return path
