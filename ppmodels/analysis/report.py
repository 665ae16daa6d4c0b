"""``report.html``: the diagnostics of a run on one self-contained page a person reads without code.

Every figure is a matplotlib PNG embedded as base64, so the file can be mailed or archived alone. The page opens
with an overall verdict in plain words (:func:`overall_verdict`) and the table of verdicts, each keyed by the
question it answers (:data:`VERDICT_TITLES`). Each section opens with its verdict of
:func:`ppmodels.analysis.diagnostics.verdicts` and ends with what to look for. ArviZ draws the plots it has
(``plot_khat``, ``plot_loo_pit``, ``plot_ppc``, ``plot_bpv``, and for NUTS ``plot_trace``, ``plot_rank``,
``plot_posterior``, ``plot_energy``); images are capped in height so that no panel runs for thousands of pixels.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import xarray as xr

from .diagnostics import KHAT_GOOD, MI_COLLAPSED, VERDICT_TITLES, _arviz, continuous_latents, khat_threshold, overall_text
from .diagnostics import overall_verdict as dg_overall
from .inference_data import BINARY_NOTE, labels_of, loo_pit_defined, loo_subset
from ..files import atomic_write
from ..models import CanReconstruct, CanSample, LabeledGenerator
from ..plots import tile

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ccc;padding-bottom:.2em}
.verdict{background:#f4f6fb;border-left:4px solid #4a6fa5;padding:.6em 1em;margin:.6em 0}
.hint{color:#555;font-size:.92em}table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
img{max-width:100%;max-height:640px;width:auto;height:auto}.fig{margin:.8em 0}
.overall{background:#fff8e6;border-left:4px solid #d08a00;padding:.6em 1em;margin:.6em 0;font-size:1.08em}
.overall.good{background:#eef8ee;border-left-color:#3a8a3a}
.overall.bad{background:#fdeeee;border-left-color:#b03030}"""

#: at most this many quantities get NUTS trace, rank and posterior plots (those whose SVI value is furthest out)
MAX_NUTS_PLOTS = 6


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
    except BaseException:
        plt.close(fig)
        raise
    return png_html(fig, alt)


def png_html(fig, alt: str) -> str:
    """``fig`` as an embedded PNG ``<img>`` (the figure is closed)."""
    plt = _pyplot()
    try:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<div class="fig"><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></div>'


def arviz_html(plot: Callable[..., Any], alt: str, size: tuple[float, float], **kwargs: Any) -> str:
    """One of ArviZ's ``plot_*`` functions drawn at ``size`` inches and embedded like :func:`figure_html`.

    Its warnings are silenced (:func:`quiet_arviz`).
    """
    plt = _pyplot()
    with quiet_arviz():
        try:
            axes = plot(**kwargs, figsize=size, show=False)
        except BaseException:
            plt.close("all")
            raise
        fig = np.ravel(axes)[0].figure
        fig.set_size_inches(*size)
        return png_html(fig, alt)


@contextlib.contextmanager
def quiet_arviz():
    """Silence what ArviZ 0.23 warns about while plotting: a matplotlib 3.11 deprecation it triggers, one-chain
    inputs and 0/0 in the MCSE of constant draws. None of them concerns the reader of the page."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


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
            chosen = conv.get("selected_epoch", conv["best_epoch"])
            ax.axvline(chosen, color="black", linestyle="--", linewidth=1, label=f"diagnosed weights: epoch {chosen}")
            if conv["best_epoch"] != chosen:
                ax.axvline(conv["best_epoch"], color="grey", linestyle=":", label=f"best ELBO: epoch {conv['best_epoch']}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("ELBO per datum (nats)")
        ax.legend()

    return figure_html(draw, (7, 3.6), "ELBO by epoch")


def khat_figure(khat: np.ndarray, num_draws: int) -> str:
    """ArviZ's ``plot_khat`` of the finite k-hats, with the 0.5, 0.7 and draw-dependent thresholds, and a histogram."""
    finite = np.asarray(khat, dtype=float)[np.isfinite(khat)]
    good_k = khat_threshold(num_draws)

    def draw(axes):
        az = _arviz()
        # an ELPDData carries the draw-dependent threshold, which ArviZ then draws and bins by
        khats = az.ELPDData(data=[xr.DataArray(finite, dims=["datum"]), good_k], index=["pareto_k", "good_k"])
        with quiet_arviz():
            az.plot_khat(khats, ax=axes[0], show_hlines=True, show_bins=True, show=False)
        axes[0].set(xlabel="datum", ylabel="Pareto k-hat", title=f"k-hat per datum (lines at 0, {good_k:.2f}: the limit at {num_draws} draws, and 1)")
        axes[1].hist(finite, bins=30, color="tab:blue")
        for level, style in ((KHAT_GOOD, "--"), (good_k, "-")):
            axes[1].axvline(level, color="tab:red", linestyle=style, linewidth=1)
        axes[1].set(xlabel="Pareto k-hat", ylabel="number of data", title="distribution")

    return figure_html(draw, (11, 3.6), "Pareto k-hat per datum", ncols=2)


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


def pit_ecdf_html(pit: dict) -> str:
    """ArviZ's ECDF-difference plot of one randomized PIT per datum against the uniform, with the simultaneous band
    that :func:`ppmodels.analysis.diagnostics.pit_ecdf_check` judges by (same evaluation points, level and method)."""
    from scipy.stats import uniform

    ecdf = pit.get("ecdf") or {}
    values = pit.get("ecdf_values")
    if not ecdf.get("num_values") or values is None:
        return ""
    return arviz_html(_arviz().plot_ecdf, "ECDF of the randomized PIT minus the uniform, with its simultaneous band", (6, 3.2),
                      values=np.asarray(values), cdf=uniform(0, 1).cdf, eval_points=np.asarray(ecdf["eval_points"]), difference=True,
                      confidence_bands="optimized", ci_prob=ecdf["prob"])


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
        low, high = accuracy_intervals(bins)
        accuracy = np.array([b["accuracy"] for b in bins])
        axes[0].bar(mids, accuracy, width=width * 0.9, color="tab:blue", label="accuracy")
        axes[0].errorbar(mids, accuracy, yerr=[accuracy - low, high - accuracy], fmt="none", ecolor="black", capsize=3,
                         linewidth=1, label="95% interval (Clopper-Pearson)")
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


def accuracy_intervals(bins: list[dict], level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson (exact binomial) intervals for the accuracy of each non-empty reliability bin."""
    from scipy.stats import beta

    counts = np.array([b["count"] for b in bins])
    correct = np.round(np.array([b["accuracy"] for b in bins]) * counts)
    tail = (1 - level) / 2
    low = np.where(correct > 0, beta.ppf(tail, correct, counts - correct + 1), 0.0)
    high = np.where(correct < counts, beta.ppf(1 - tail, correct + 1, counts - correct), 1.0)
    return np.nan_to_num(low), np.nan_to_num(high, nan=1.0)


def kl_figure(values_by_latent: dict[str, np.ndarray], threshold: float = MI_COLLAPSED, measure: str = "I(x; z_d)") -> str:
    """Bars of I(x; z_d) per latent dimension (the information it carries about x), one panel per latent, collapsed
    dimensions (below ``threshold``) in red; its count of dimensions that carry information is the verdict's."""
    def draw(axes):
        for ax, (name, values) in zip(np.atleast_1d(axes), values_by_latent.items()):
            values = np.asarray(values, dtype=float)
            ax.bar(np.arange(len(values)), values, color=np.where(values < threshold, "tab:red", "tab:blue"))
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
            ax.set(xlabel=f"dimension of {name}", ylabel=f"{measure} (nats per datum)",
                   title=f"{name}: {int((values >= threshold).sum())} of {len(values)} dimensions carry information")
            ax.set_xticks(np.arange(len(values)))

    return figure_html(draw, (min(5 * len(values_by_latent), 11), 3.2), "information per latent dimension", ncols=len(values_by_latent))


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
                   "Each reconstruction sits below its original. Blurry but recognisable is common for a latent-variable model with a "
                   "simple likelihood; a wrong digit means the latent code lost it.")]
    khat = np.asarray(result["khat"]["khat"], dtype=float)
    if result["khat"].get("exact") or not np.isfinite(khat).any():  # constant weights: no datum is fitted worse than another
        return out
    datum = idata.observed_data["datum"].values
    position = {int(d): i for i, d in enumerate(datum)}
    worst = [position[w["datum"]] for w in result["khat"].get("worst", []) if w["datum"] in position][:show]
    if not worst:  # no datum above the cut in both halves of the draws: a ranking would be noise
        return out
    labels = ", ".join(f"#{datum[i]}: {khat[i]:.2f}" for i in worst)
    out.append(section("The data the guide fits worst", None, images_figure([("largest k-hat first", x[worst])], len(worst), "worst k-hat images"),
                       f"Left to right, the datum's index in the split and its k-hat: {labels}. Only images above the cut in both halves of "
                       "the draws are shown (a single k-hat is noisy); these are the images whose posterior the guide misses most; "
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
        out.append(section("Samples from the model", (result.get("verdicts") or {}).get("sample_quality"), samples_with_quality(images_figure(rows, 16, "prior samples"), result),
                           "Samples should look like the data. Smudges that are no digit mean the prior has regions the decoder never learned." + QUALITY_HINT * bool(result.get("sample_quality"))))
    if conditional is not None:
        out.append(section("Class-conditional samples p(x | y)", None, images_figure([(f"y = {c}", conditional[c * 10:(c + 1) * 10]) for c in range(num_classes)], 10, "class-conditional samples"),
                           "One row per class: each row should show that class in varied styles."))
    return out


def header(result: dict) -> list[str]:
    """The title, the overall verdict, what was diagnosed, and the table of verdicts keyed by their questions."""
    text, good = overall_verdict(result)
    ordered = sorted(result["verdicts"].items(), key=lambda kv: list(VERDICT_TITLES).index(kv[0]) if kv[0] in VERDICT_TITLES else len(VERDICT_TITLES))
    return [f"<h1>Diagnostics of {html.escape(result['model'])} run {html.escape(Path(result['run']).name)}</h1>",
            f'<p class="overall {"good" if good else (result.get("overall") or {}).get("status", "warning")}">{html.escape(text)}</p>',
            table([("run", result["run"]), ("model", result["model"]), ("data", f"{result['data']} ({result['split']} split)"),
                   ("likelihood p(x | latents)", result.get("likelihood", "")),
                   ("data points", str(result["num_data"])), ("guide draws per datum", str(result["particles"]))]),
            "<h2>Verdicts</h2>", table([(VERDICT_TITLES.get(k, k.replace("_", " ")), v) for k, v in ordered], ("question", "answer"))]


def overall_verdict(result: dict) -> tuple[str, bool]:
    """The headline paragraph from ``result["overall"]`` (:func:`ppmodels.analysis.diagnostics.overall_verdict`, the
    verdict of ``diagnostics.json``), and whether the status is ``good``."""
    overall = result.get("overall") or dg_overall(result)
    checked = f"{result['num_data']} {result['split']} data, {result['particles']} guide draws each"
    return overall_text(overall, checked), overall["status"] == "good"


def inference_sections(result: dict) -> list[str]:
    """Training convergence, k-hat (when the weights have a tail to judge), and the bound against the ELBO."""
    verdicts, ll = result["verdicts"], result["log_likelihood"]
    out = []
    if result.get("convergence"):
        out.append(section("Training: did the ELBO converge?", verdicts.get("convergence"), elbo_figure(result["convergence"]),
                           "The validation ELBO should rise and level off. A curve still climbing at the end means training stopped too early. "
                           "The dashed line is the epoch whose weights the run kept and this page diagnoses."))
    # an exact guide (PPCA) or none (the GMM) has constant weights: no k-hat to plot, a slack of rounding noise
    approximate = result.get("guide_samples_latents", True) and not result["khat"].get("exact")
    if approximate:
        cut = result["khat"]["threshold"]
        out.append(section("Did variational inference work? Pareto k-hat per datum", verdicts["khat"], khat_figure(np.asarray(result["khat"]["khat"], dtype=float), result["khat"]["num_particles"]),
                           "k-hat (Yao et al. 2018) estimates how heavy the tail of the importance weights p(x,z)/q(z|x) is. Below 0.5 (dashed) the guide "
                           f"covers the posterior; above {cut:.2f} (solid: min(1 - 1/log10 S, 0.7) for S draws, as ArviZ; k-hat itself is unreliable above it) it is too narrow and "
                           "importance sampling from it is unreliable."))
    rows = [("ELBO (guide draws)", "elbo"), ("importance-weighted bound", "iw"), ("PSIS-smoothed estimate (not a bound)", "psis"), ("gap (IW - ELBO)", "gap")]
    numbers = table([(label, f"{ll[key]:.3f} +- {ll[key + '_se']:.3f}") for label, key in rows], ("estimate, nats per datum", "mean +- standard error"))
    out.append(section("How tight is the ELBO?" if approximate else "Log-likelihood (exact)", verdicts["log_likelihood"],
                       numbers + (gap_figure(ll["per_datum"]) if approximate else ""),
                       "Points far above the diagonal are data whose posterior the guide approximates poorly." if approximate else
                       "The weights are exact here (no latent is sampled from a guide), so the ELBO is log p(x)."))
    return out


def latent_sections(idata, result: dict) -> list[str]:
    """The KL of each latent dimension, then one scatter of posterior means per continuous latent, coloured by label."""
    labels = labels_of(idata)
    latents = continuous_latents(idata)
    with_label = "posterior" in idata.groups() and "y" in idata.posterior  # then z (z2 in M1+M2) should hold style, not class
    out = []
    if result.get("mutual_information"):
        out.append(section("How much does each latent dimension carry? I(x; z_d)", result["verdicts"].get("active_units"), kl_figure(result["mutual_information"]),
                           "The mutual information between x and dimension d of the latent under the guide, in nats per datum: how much q(z_d | x) "
                           f"changes with x (at most log N). Red bars (below {MI_COLLAPSED}, dashed) are collapsed dimensions: the guide gives every x "
                           "the same distribution there and the decoder cannot use them. Unlike the KL to the prior it is not raised by a guide "
                           "that is merely narrower than the prior for every x."))
    for name, points in latents.items():
        hint = "Coloured by the true label. Classes that form separate clusters are easy to classify from this latent code."
        if with_label and name == list(latents)[-1]:
            hint = ("Coloured by the true label. The label has its own latent y here, so this style latent should not cluster by "
                    "class: clusters mean the class leaked into it and p(x | y) will hardly depend on y.")
        verdict = result["verdicts"].get("active_units") if not out and name == next(iter(latents)) else None
        out.append(section(f"Latent space {name}", verdict, latent_figure(points, labels, name), hint))
    return out


def arviz_ppc_html(idata) -> str:
    """ArviZ's posterior predictive checks of x: ``plot_ppc`` (20 draws), ``plot_bpv`` for four test statistics
    (mean, sd, smallest value, share of zeros: a continuous predictive for data piled at 0 shows in the last two) and
    ``plot_loo_pit`` with its simultaneous ECDF band, on the first data (:func:`loo_subset`: PSIS per pixel is slow)."""
    az = _arviz()
    ppc = arviz_html(az.plot_ppc, "posterior predictive density of x", (10, 3.2), data=idata, var_names=["x"], num_pp_samples=20, random_seed=0)
    statistics = [("mean", "mean"), ("std", "standard deviation"), (lambda v: np.min(v, axis=-1), "smallest value"),
                  (lambda v: np.mean(v == 0, axis=-1), "share of exact zeros")]

    def draw(axes):
        for ax, (stat, title) in zip(axes, statistics):
            with quiet_arviz():
                az.plot_bpv(idata, kind="t_stat", t_stat=stat, var_names=["x"], ax=ax, show=False)
            ax.set_title(f"T = {title}", fontsize=9)

    bpv = figure_html(draw, (12, 2.8), "test statistics of the posterior predictive", ncols=4)
    if not loo_pit_defined(idata):
        return ppc + bpv + f"<p>{html.escape(BINARY_NOTE)}</p>"
    loo_pit = arviz_html(az.plot_loo_pit, "LOO-PIT of x", (6, 3.2), idata=loo_subset(idata), y="x", ecdf=True)
    return ppc + bpv + loo_pit


def check_sections(model, idata, result: dict) -> list[str]:
    """Posterior predictive checks (ours and ArviZ's) and, for classifiers, calibration and the confusion matrix."""
    verdicts, out = result["verdicts"], []
    if result.get("pit"):
        out.append(section("Posterior predictive checks", verdicts.get("ppc"),
                           pit_figure(result["pit"], result["reconstruction_error"], result.get("train_reconstruction_error"), model.config.x_shape),
                           "Left: where each observed feature falls in its predictive distribution, over the features the model is unsure of (uniform is ideal; "
                           "reconstructing x from itself makes it bunch in the middle). Middle: held-out data reconstructed clearly worse than training "
                           "data means overfitting (or other data). Right (images): red pixels are brighter in the data than the model predicts, blue ones darker."))
        ecdf = result["pit"].get("ecdf") or {}
        if ecdf.get("num_values"):
            out.append(section("Randomized PIT: ECDF against the uniform", None, pit_ecdf_html(result["pit"]),
                               f"One randomized PIT per datum (of {ecdf['num_values']}), of a feature drawn at random among the {ecdf['informative_features']} "
                               "that vary in the data (constant ones, such as an image's corners, say nothing): ties between discrete values are "
                               "broken at random, so the values are uniform when the data look like draws of the predictive. The line is their "
                               f"ECDF minus the uniform's; it should stay inside the {ecdf['prob']:.0%} simultaneous band. One value per datum, because "
                               "the features of a datum share its latent and the band is made for independent values. Reconstructing x from "
                               "itself makes the check conservative: a line outside the band is a real misfit."))
        out.append(section("Posterior predictive checks, as ArviZ draws them", None, arviz_ppc_html(idata),
                           "Top: the density of all observed values (black) against 20 predictive draws (blue); discrete values are drawn as histograms. "
                           "Middle: the observed test statistic (black) against its predictive distribution, with the Bayesian p-value; a p-value "
                           "near 0 or 1 is a feature of the data the model does not reproduce (a Gaussian predictive has negative values and no "
                           "exact zeros where pixels pile at 0). Bottom: the LOO-PIT ECDF minus the uniform one inside its 94% band; the "
                           "leave-one-out weights of a per-datum latent are harmonic-mean weights, so read its shape, not its p-value."))
    if result.get("calibration"):
        out.append(section("Classifier q(y|x): calibration and confusion", verdicts.get("calibration"),
                           classifier_figure(result["calibration"], np.asarray(result["classification"]["confusion_matrix"])),
                           "Bars below the diagonal: the classifier is more confident than it is accurate; the whiskers are 95% intervals of each "
                           "bin's accuracy (few data, wide interval). Counts per bin are written at the bottom."))
    return out


def nuts_shown(gold: dict) -> list[str]:
    """The compared quantities that get plots: all of them up to :data:`MAX_NUTS_PLOTS`, else those whose SVI value
    lies furthest out among the NUTS draws (by quantile) and those with the worst R-hat."""
    quantities = gold["quantities"]
    if len(quantities) <= MAX_NUTS_PLOTS:
        return list(quantities)
    by_z = sorted(quantities, key=lambda n: (quantities[n]["tail"], -abs(np.nan_to_num(quantities[n]["z"]))))
    by_rhat = sorted(quantities, key=lambda n: -np.nan_to_num(quantities[n]["rhat"]))
    return list(dict.fromkeys(by_z[:MAX_NUTS_PLOTS // 2] + by_rhat))[:MAX_NUTS_PLOTS]


def nuts_figures(nuts, gold: dict) -> str:
    """ArviZ's trace (divergences marked at the bottom) and rank plots, the posterior with the SVI value marked, and the
    energy plot with E-BFMI, for the quantities of :func:`nuts_shown`."""
    az, shown = _arviz(), nuts_shown(gold)
    svi = [gold["quantities"][name]["svi"] for name in shown]
    height = 1.6 * len(shown) + 0.6
    return (arviz_html(az.plot_trace, "NUTS trace plots", (11, height), data=nuts, var_names=shown, compact=False,
                       lines=[(name, {}, value) for name, value in zip(shown, svi)])
            + arviz_html(az.plot_rank, "NUTS rank plots", (11, 2.4 * -(-len(shown) // 3)), data=nuts, var_names=shown)
            + arviz_html(az.plot_posterior, "NUTS posterior with the SVI value", (11, 2.4 * -(-len(shown) // 3)), data=nuts,
                         var_names=shown, ref_val=svi, textsize=9)
            + arviz_html(az.plot_energy, "NUTS energy and E-BFMI", (5.5, 3.2), data=nuts))


def svi_position(q: dict) -> str:
    """Where the SVI value lies among the NUTS draws, by rank: outside their range, or its quantile and rank."""
    if q["outside"]:
        return f"{q['outside']} all {q['num_draws']} draws"
    return f"quantile {q['quantile']:.3f} (rank {q['rank']} of {q['num_draws']})"


def nuts_tables(gold: dict) -> str:
    """``az.summary``'s columns per compared quantity (with the SVI value, its position among the NUTS draws and its z)
    and the sampler's own diagnostics."""
    rows = [(name.replace("_", " "), f"{q['mean']:.4g} +- {q['sd']:.2g}", f"{q['interval_99'][0]:.4g} to {q['interval_99'][1]:.4g}",
             f"{q['mcse_mean']:.2g} / {q['mcse_sd']:.2g}", f"{q['ess']:.0f} / {q['ess_tail']:.0f}", f"{q['rhat']:.3f}",
             f"{q['svi']:.4g}: {svi_position(q)}; {q['z']:+.2f} sds")
            for name, q in gold["quantities"].items()]
    head = ("quantity", "NUTS mean +- sd", "NUTS central 99%", "MCSE mean / sd", "ESS bulk / tail", "R-hat", "SVI: among the NUTS draws; z")
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    summary = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"
    sampler = gold.get("sampler")
    if not sampler:
        return summary
    return summary + table([
        ("divergent transitions", f"{sampler['divergences']} ({100 * sampler['divergent_fraction']:.1f}% of draws)"),
        ("tree depth", f"mean {sampler['mean_tree_depth']:.1f}, largest {sampler['largest_tree_depth']}; "
                       f"{sampler['tree_depth_hits']} draws at the limit {sampler['max_tree_depth']}"),
        ("E-BFMI per chain", ", ".join(f"{b:.2f}" for b in sampler["bfmi"]) + f" (below {sampler['bfmi_threshold']}: poor exploration)"),
        ("acceptance rate per chain", ", ".join(f"{a:.2f}" for a in sampler["acceptance_rate"])),
        ("step size per chain", ", ".join(f"{a:.3g}" for a in sampler["step_size"]))], ("sampler diagnostic", "value"))


def gold_standard_sections(result: dict) -> list[str]:
    """The NUTS gold standard of ``diagnose --nuts`` (ppca, gmm): the summary and sampler tables, then the plots."""
    gold = result.get("gold_standard")
    if not gold:
        return []
    body = nuts_tables(gold)
    closed = [(name.replace("_", " "), f"{q['closed_form']:.4g}: posterior quantile {q['quantile_closed_form']:.3f}, {q['z_closed_form']:+.2f} sds from the NUTS mean")
              for name, q in gold["quantities"].items() if "closed_form" in q]
    if closed:
        body += table(closed, ("quantity", "closed-form maximum on the same data"))
    angle_names = {"nuts_vs_closed_form": "NUTS against the closed form, same data", "posterior_spread": "posterior spread (median draw)",
                   "between_chains": "between the chains' means", "fit_vs_closed_form": "SVI fit against the closed form on its training data",
                   "data_subset_shift": "closed form: NUTS subset against all training data", "fit_vs_nuts": "SVI fit against NUTS"}
    if gold.get("angles_deg"):
        body += table([(angle_names[key], f"{value:.2f} degrees") for key, value in gold["angles_deg"].items()], ("largest subspace angle", "value"))
    verdicts = result["verdicts"]
    verdict = " ".join(v for v in (verdicts.get("gold_standard"), verdicts.get("nuts_sampler")) if v)
    if result.get("nuts_idata") is not None:
        body += nuts_figures(result["nuts_idata"], gold)
    return [section("Gold standard: NUTS against the SVI fit", verdict, body,
                    f"NUTS ({gold['num_chains']} chains x {gold['num_samples']} draws, {gold['num_data']} of the {gold.get('num_fit_data', gold['num_data'])} training data; prior {gold['prior']}). "
                    + gold["note"] + " Trace plots: chains should overlap and look like noise, divergences are ticks at the bottom, the SVI value "
                    "is the line. Rank plots: flat histograms mean the chains mix. Posterior: the SVI value (orange) should lie inside it; the table "
                    "gives its quantile among the draws, which says how far out it is without assuming a normal posterior. "
                    "Energy: the two distributions should overlap (E-BFMI above 0.3). The draws are in nuts.nc beside this page.")]


def write_report(path: str | Path, model, idata, result: dict) -> Path:
    """Write ``report.html`` for a :func:`ppmodels.commands.diagnose.diagnose` result and its InferenceData."""
    parts = header(result) + inference_sections(result)
    if len(model.config.x_shape) == 3:
        parts += image_sections(model, idata, result)
    elif result.get("sample_quality"):  # flat data: no grid, the yardstick alone
        parts.append(section("Samples from the model", result["verdicts"].get("sample_quality"), sample_quality_html(result["sample_quality"]), QUALITY_HINT))
    parts += latent_sections(idata, result) + check_sections(model, idata, result) + gold_standard_sections(result)
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>ppmodels diagnostics</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return path


# ----- the sample-quality yardstick, and the page of a model without a likelihood (the GAN) -----------------------
QUALITY_HINT = (" Beside the grid: the yardstick of ppmodels.analysis.sample_quality, on as many samples as the split has, in the "
                "features of a classifier trained on the same data. The Frechet distance is 0 for the data against itself and only "
                "comparable at equal sample counts on one data set; precision says whether samples are realistic, recall whether they "
                "cover the data's variety. Bars: each class's share of the samples as that classifier labels them, the data's share "
                "marked; red bars are classes under a tenth of their share (mode collapse).")


def coverage_figure(coverage: dict) -> str:
    """Bars of each class's share of the samples, the data's share marked, classes under a tenth of it in red."""
    shares, data = np.asarray(coverage["shares"]), np.asarray(coverage["data_shares"])

    def draw(ax):
        classes = np.arange(len(shares))
        from matplotlib.patches import Patch

        low = np.isin(classes, coverage["low_classes"])
        ax.bar(classes, shares, color=np.where(low, "tab:red", "tab:blue"))
        data_mark = ax.scatter(classes, data, color="black", marker="_", s=400, zorder=3)
        ax.set(xlabel="class (as the yardstick's classifier labels the samples)", ylabel="share of samples", xticks=classes,
               title=f"mode coverage: {len(shares) - coverage['num_low_classes']} of {len(shares)} classes")
        ax.legend([Patch(color="tab:blue"), Patch(color="tab:red"), data_mark], ["samples", "under a tenth of its share", "the data's share"], fontsize=8)

    return figure_html(draw, (6, 3), "share of samples per class")


def sample_quality_html(quality: dict) -> str:
    """The yardstick's numbers as a table, and the coverage bars."""
    coverage = quality["coverage"]
    rows = [("Frechet distance (lower is better)", f"{quality['frechet_distance']:.3f}"),
            (f"precision (samples inside the data's {quality['k']}-NN balls)", f"{quality['precision']:.3f}"),
            (f"recall (data inside the samples' {quality['k']}-NN balls)", f"{quality['recall']:.3f}"),
            ("classes under a tenth of their share", f"{coverage['num_low_classes']} of {len(coverage['shares'])}" + (f": {coverage['low_classes']}" if coverage["low_classes"] else "")),
            ("smallest / largest class share", f"{min(coverage['shares']):.1%} / {max(coverage['shares']):.1%}"),
            ("samples (and real data) compared", str(quality["num_samples"])),
            ("the yardstick classifier's test accuracy", f"{quality['classifier_test_accuracy']:.1%}")]
    return table(rows, ("sample quality", "value")) + coverage_figure(coverage)


def samples_with_quality(grid: str, result: dict) -> str:
    """A sample grid with the yardstick's table and coverage bars beside it (the grid alone when not measured)."""
    if not result.get("sample_quality"):
        return grid
    return (f'<div style="display:flex;gap:1.2em;align-items:flex-start;flex-wrap:wrap"><div style="flex:1 1 420px">{grid}</div>'
            f'<div style="flex:1 1 420px">{sample_quality_html(result["sample_quality"])}</div></div>')


def generator_training_figure(training: dict) -> str:
    """Each player's mean loss per epoch (left) and the Frechet distance of each epoch's samples (right)."""
    def draw(axes):
        for key in (k for k in training if k.startswith("loss_")):
            axes[0].plot(training["epoch"], [np.nan if v is None else v for v in training[key]], marker=".", label=key[5:])
        axes[0].set(xlabel="epoch", ylabel="mean loss", title="the players' losses")
        axes[0].legend()
        distances = [np.nan if v is None else v for v in training["frechet_distance"]]
        axes[1].plot(training["epoch"], distances, marker=".", color="tab:green")
        axes[1].set(xlabel="epoch", ylabel="Frechet distance", title="1000 samples against the validation split, per epoch")
        if np.nanmin(distances, initial=np.inf) > 0 and np.nanmax(distances, initial=0) > 10 * np.nanmin(distances, initial=np.inf):
            axes[1].set_yscale("log")  # a run that improves falls by orders of magnitude
        for ax in axes:
            ax.xaxis.get_major_locator().set_params(integer=True)

    return figure_html(draw, (11, 3.4), "training losses and Frechet distance by epoch", ncols=2)


def generator_overall_text(result: dict) -> str:
    """The headline of a generator's page from ``result["overall"]``."""
    problems = result["overall"]["problems"]
    checked = f"{result['sample_quality']['num_samples']} samples against as many {result['split']} data" if result.get("sample_quality") else "its samples"
    if not problems:
        return (f"Overall: good. No failure found ({checked}): no class dropped, the discriminator does not win outright, and the "
                "Frechet distance fell during training. Whether the samples are good enough is the numbers' to say; a GAN has no likelihood to check.")
    return (f"Overall: bad ({checked}); {len(problems)} failure{'s' if len(problems) > 1 else ''}: "
            + "; ".join(p["message"] for p in problems) + ". The sections below show the evidence.")


def write_generator_report(path: str | Path, model, result: dict) -> Path:
    """``report.html`` of :func:`ppmodels.commands.diagnose.diagnose_generator`: the overall verdict, the verdicts, the
    sample grid beside the yardstick and the coverage bars, the training losses and Frechet distances, and the
    discriminator's checks."""
    status = result["overall"]["status"]
    titles = result.get("verdict_titles", {})
    parts = [f"<h1>Diagnostics of {html.escape(result['model'])} run {html.escape(Path(result['run']).name)}</h1>",
             f'<p class="overall {status}">{html.escape(generator_overall_text(result))}</p>',
             table([("run", result["run"]), ("model", result["model"]), ("data", f"{result['data']} ({result['split']} split)"),
                    ("likelihood p(x | latents)", result["likelihood"])]),
             "<h2>Verdicts</h2>", table([(titles.get(k, k), v) for k, v in result["verdicts"].items()], ("question", "answer"))]
    grid = images_figure([("samples G(z), z ~ N(0, I)", model.sample(64, generator=torch.Generator().manual_seed(result["seed"])))], 16, "prior samples") \
        if len(model.config.x_shape) == 3 else ""
    verdict = " ".join(result["verdicts"][k] for k in ("sample_quality", "coverage") if k in result["verdicts"])
    parts.append(section("Samples from the model", verdict, samples_with_quality(grid, result),
                         "Samples should look like the data, in every class and in varied styles." + QUALITY_HINT * bool(result.get("sample_quality"))))
    training = result.get("training") or {}
    if training.get("epoch"):
        parts.append(section("Training: the two players", result["verdicts"].get("training"), generator_training_figure(training),
                             "The losses of a healthy game stay near each other and level off; a discriminator loss falling to 0 while the "
                             "generator's climbs means the discriminator won. The Frechet distance should fall and level off; one that "
                             "ends far above its best diverged, one that swings up and down over the second half oscillates "
                             "(the last epoch's weights are kept)."))
    checks = result.get("fit_checks") or {}
    if checks:
        parts.append(section("How the game ended", result["verdicts"].get("discriminator"),
                             table([("mean D(x), held-out data", f"{checks['discriminator_real']:.3f}"), ("mean D(G(z)), samples", f"{checks['discriminator_fake']:.3f}"),
                                    ("accuracy telling them apart at 0.5", f"{checks['discriminator_accuracy']:.1%}")], ("discriminator", "value")),
                             "From the run's summary. Near 50%: the samples fool the discriminator; near 100%: it wins outright and the generator "
                             "gets no useful gradient."))
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>ppmodels diagnostics</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return path

