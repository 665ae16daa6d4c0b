"""``ppmodels diagnose``: posterior draws of a trained run as ArviZ data, the diagnostics, and a report.

Writes into ``out`` (default ``RUN/diagnostics``)::

    idata.nc           arviz.InferenceData (see ppmodels.analysis.inference_data), plus the training ELBO trace and q(y|x)
    nuts.nc            with --nuts: the NUTS draws and sampler statistics (ppmodels.analysis.gold_standard.nuts_idata)
    diagnostics.json   every number of ppmodels.diagnostics, one plain-language verdict per diagnostic
    report.html        one self-contained page with figures (see ppmodels.report)
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..analysis import diagnostics as dg
from ..analysis.gold_standard import gold_standard_for, gold_standard_verdict, sampler_verdict
from ..metrics import classification_metrics, no_labels_note
from ..analysis.sample_quality import QUALITY_TITLES, generator_quality, quality_problems, quality_verdicts
from ..data import parse_spec, select_split
from ..errors import ConfigError, PPModelsError, RunError, check_int, check_path, check_seed
from ..files import read_json, write_json
from ..infer.importance import prior_sampled_sites, trace_particles
from ..models import CanClassify, CanSample, LabeledGenerator
from ..runs import (CONFIG, METRICS, SUMMARY, check_output, check_particles_memory, check_output_folder, load, open_applied_data, open_run_dataset,
                    output_lock, record_output)
from ..analysis.inference_data import (add_class_probabilities, add_model_log_weights, add_training_trace, batched_posterior_arrays,
                                       datum_log_likelihood, has_own_log_weights, labels_of, loo_subset, posterior_idata, save_idata, OBSERVED_SITE,
                                       feature_dims, log_likelihood_float64, thinned)

IDATA, DIAGNOSTICS, REPORT, NUTS_IDATA = "idata.nc", "diagnostics.json", "report.html", "nuts.nc"
#: how many diagnosed data are decoded with every class to see whether the decoder uses the label
CLASS_CHECK_DATA = 100
#: training rows (drawn at random) that fit the independent-features baseline
BASELINE_ROWS = 20_000
#: attribute of ``sample_stats``: the model's latents that the guide leaves to the prior, comma-separated
PRIOR_SAMPLED = "prior_sampled_latents"


def read_metrics(run: str | Path) -> list[dict]:
    """The per-epoch records of ``RUN/metrics.jsonl`` (empty when the file is missing)."""
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        records = [json.loads(line) for line in lines[:-1]]
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON lines ({exc}); the run folder is damaged") from None
    try:
        records += [json.loads(line) for line in lines[-1:]]
    except json.JSONDecodeError:  # the last line of a run killed mid-write; resuming drops it too
        pass
    return records


def choose_data(num: int, available: int, seed: int) -> np.ndarray:
    """Sorted indices of ``num`` data drawn without replacement (all of them when ``num >= available``)."""
    if num >= available:
        return np.arange(available)
    return np.sort(np.random.default_rng(seed).choice(available, size=num, replace=False))


def diagnosed_data(run_config: dict, spec: str | None, data_dir: str | None, run: Path | None = None):
    """The dataset to diagnose (``spec``, default the run's own; :func:`~ppmodels.runs.open_applied_data`) and the
    run's own training data for the overfitting check (``None`` when it cannot be opened any more)."""
    dataset, own = open_applied_data(run_config, spec, data_dir, run)
    if own:
        return dataset, dataset
    try:
        return dataset, open_run_dataset(run_config, data_dir, run)
    except PPModelsError:
        return dataset, None


def checked_outputs(run: Path, out: str | Path | None, report: bool, overwrite: bool) -> tuple[Path, list[str]]:
    """The output folder (default ``RUN/diagnostics``) and the names diagnose writes there, each checked by
    :func:`~ppmodels.runs.check_output` before any work."""
    out = check_output_folder(out if out is not None else run / "diagnostics")
    names = [IDATA, DIAGNOSTICS] + [REPORT] * report
    for name in names:
        check_output(out / name, (Path(name).suffix,), overwrite=overwrite, own=[run / "diagnostics" / name], command="diagnose", run=run)
    return out, names


def weight_diagnostics(idata) -> dict[str, Any]:
    """k-hat and the bound against the ELBO, from the model's own weights when it has them (exact sums over y)."""
    datum, stats = idata.observed_data["datum"].values, idata.sample_stats
    weights = "iw_log_weight" if "iw_log_weight" in stats else "log_weight"
    log_weights = stats[weights].values[0].T  # (datum, draw): samples last, as psislw wants
    # the stored weights are those of the guide's own ELBO only when the guide samples every latent: with none (the
    # GMM) or some left to the prior (the GMVAE's component c, summed exactly in training) they judge another proposal
    guided = "posterior" in idata.groups() and idata.posterior.attrs.get("source", "guide") == "guide"
    whole_guide = guided and not stats.attrs.get(PRIOR_SAMPLED)
    guide_weights = stats["log_weight"].values[0].T if whole_guide else None
    result: dict[str, Any] = {"khat": dg.pareto_khat(log_weights, datum), "log_weights": weights, "guide_samples_latents": guided,
                              "log_likelihood": dg.log_likelihood_summary(log_weights, guide_weights)}
    if weights != "log_weight" and whole_guide:  # the headline judges the whole guide, q(y|x) included (y sampled, not summed)
        result["khat_exact_sum"], result["khat"] = result["khat"], dg.pareto_khat(guide_weights, datum)
    return result


def compute_diagnostics(model, idata, records: list[dict], train_errors: np.ndarray | None, seed: int = 0,
                        predictive_draws: int = 20, baseline_x: np.ndarray | None = None) -> dict[str, Any]:
    """Every diagnostic of :mod:`ppmodels.diagnostics` from an InferenceData of :func:`posterior_idata`; the PIT uses
    the first ``predictive_draws`` posterior predictive draws, the p-values up to :data:`~ppmodels.analysis.diagnostics.PPC_DRAWS`;
    ``baseline_x`` (training data) fits the independent-features baseline."""
    result = weight_diagnostics(idata)
    result["kl_per_dim"] = kl = {name[3:]: idata.sample_stats[name].values[0].mean(axis=(0, 1))
                                 for name in idata.sample_stats.data_vars if name.startswith("kl_")}
    if result["guide_samples_latents"]:  # I(x; z) of each continuous latent, from its draws
        result["mutual_information"] = {name: dg.mutual_information(idata.posterior[name].values[0]) for name in dg.continuous_latents(idata)}
    mi = result.get("mutual_information") or {}
    result["active_units"] = {name: dg.active_units(means, kl_per_dim=kl.get(name), mi_per_dim=mi.get(name))
                              for name, means in dg.continuous_latents(idata).items()}
    if isinstance(model, LabeledGenerator):  # the class rows: does p(x | y, z) change with y?
        result["class_dependence"] = dg.class_dependence(model.decode_with_labels(idata.observed_data["x"].values[:CLASS_CHECK_DATA]))
    result["reconstruction_error"] = errors = -datum_log_likelihood(idata).mean(0)
    result["train_reconstruction_error"] = train_errors
    if "posterior_predictive" in idata.groups():  # posterior predictive checks need posterior draws (a guide's or exact ones)
        observed = idata.observed_data["x"].values.reshape(len(errors), -1)
        replicates = idata.posterior_predictive["x"].values[0, :predictive_draws].reshape(-1, len(errors), observed.shape[1])
        result["pit"] = dg.predictive_pit(observed, replicates, model.config.likelihood, seed)
        ecdf = dg.pit_ecdf_check(result["pit"]["pit"], observed, seed)
        result["pit"]["ecdf_values"], result["pit"]["ecdf"] = ecdf.pop("values"), ecdf
        draws = idata.posterior_predictive["x"].values[0, :dg.PPC_DRAWS]
        result["ppc_pvalues"] = dg.ppc_pvalues(observed, draws.reshape(len(draws), len(errors), -1), model.config.likelihood, seed)
        result["reconstruction"] = dg.reconstruction_shift(errors, train_errors) if train_errors is not None else None
    result["arviz_loo"] = arviz_loo_check(idata, result["log_likelihood"]["per_datum"]["iw"])
    if baseline_x is not None:
        x = idata.observed_data["x"].values
        baseline = dg.independent_baseline(baseline_x, x, model.config.likelihood)
        result["baseline"] = dg.baseline_comparison(baseline, result["log_likelihood"]["per_datum"]["iw"])
    labels = labels_of(idata) if "predictions" in idata.groups() else None
    known = None if labels is None else labels >= 0  # an image cube's background pixels have no label (-1)
    if labels is not None and known.any():
        probs, labels = idata.predictions["y_prob"].values[0, 0][known], labels[known]
        result["calibration"] = dg.calibration(probs, labels)
        result["classification"] = classification_metrics(labels, probs.argmax(1), probs.shape[1])
    result["convergence"] = dg.training_convergence(records) if records else None
    return result


def arviz_loo_check(idata, iw: np.ndarray) -> dict[str, Any]:
    """``az.loo`` (per feature) on the first data of ``idata`` (:func:`loo_subset`) against the importance-weighted
    bound ``iw`` of the same data (nats per datum); the difference is also written into the attributes of
    ``log_likelihood`` (``loo_minus_iw_per_datum``), beside its note."""
    subset = loo_subset(idata)
    log_likelihood_float64(subset)  # float32 per-feature values give az.loo NaN
    count = subset.observed_data.sizes["datum"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # k-hat > 0.7 everywhere: that is what the note explains
        loo = dg._arviz().loo(subset, reff=1.0, var_name=OBSERVED_SITE)  # the guide's draws are independent
    per_datum, bound = float(loo.elpd_loo) / count, float(np.mean(iw[:count]))
    excess = per_datum - bound
    idata.log_likelihood.attrs["loo_minus_iw_per_datum"] = excess
    idata.log_likelihood.attrs["warning"] = (f"az.loo gives {per_datum:.2f} nats per datum on the first {count} data, {excess:+.2f} against "
                                             f"their importance-weighted bound {bound:.2f}: do not read it as log p(x) or compare models with it")
    return {"num_data": count, "elpd_loo_per_datum": per_datum, "iw_per_datum": bound, "loo_minus_iw_per_datum": excess}


def train_reconstruction_errors(model, train_x: torch.Tensor, num: int, particles: int, seed: int, batch_size: int) -> np.ndarray:
    """``-E_q[log p(x|z)]`` for ``num`` training data (the reference for held-out reconstruction errors)."""
    idx = choose_data(num, len(train_x), seed + 1)
    arrays = batched_posterior_arrays(model, train_x[idx], particles, seed + 1, batch_size, predictive_draws=1)
    return -datum_log_likelihood(arrays["log_likelihood"]["x"]).mean(0)


def diagnose(run: str | Path, data: str | None = None, out: str | Path | None = None, *, split: str = "test",
             num_data: int = 500, particles: int = 1000, seed: int = 0, data_dir: str | None = None,
             batch_size: int = 100, predictive_draws: int = 20, stored_draws: int = 50, report: bool = True, nuts: bool = False,
             nuts_samples: int = 1000, nuts_warmup: int = 1000, nuts_chains: int = 4, quality: bool = True, overwrite: bool = False,
             progress: bool = False) -> dict[str, Any]:
    """Diagnose the run in folder ``run`` on ``num_data`` data of ``split`` with ``particles`` guide draws each.

    Every diagnostic uses all ``particles`` draws; ``idata.nc`` keeps the first ``stored_draws`` of them in every group
    (the per-feature arrays grow with data x draws x features: 360 digits x 1000 draws made a 128 MB file).

    Returns the content of ``diagnostics.json`` (with per-datum arrays) and writes the files of the module
    docstring into ``out`` (files there that ppmodels did not write are replaced only with ``overwrite``; see
    :mod:`ppmodels.runs.outputs`). With ``nuts`` (ppca and gmm) it also compares the fit with a NUTS posterior of the globals
    on the training data the fit saw (:data:`ppmodels.gold_standard.GOLD_STANDARDS`), under ``gold_standard``; ``progress``
    reports the NUTS chains' progress on stderr. With
    ``quality``, a model that samples on fully labeled data in memory gets the sample-quality yardstick
    (:func:`add_sample_quality`), shown beside the report's sample grid. A model without a likelihood (the GAN) gets
    :func:`diagnose_generator` instead.

    Example::

        ppmodels.train("vae", "digits", out="runs/vae", train_config=TrainConfig(epochs=1), model_options={"hidden": [64]}, progress=False)
        result = ppmodels.diagnose("runs/vae", split="test", num_data=20, particles=50)     # defaults: 500 and 1000
        result["verdicts"]["khat"]
    """
    check_int(num_data, "--num-data", minimum=1)
    check_int(particles, "--particles", minimum=1)
    check_seed(seed)
    check_int(stored_draws, "--stored-draws", minimum=1)
    if num_data < 1 or particles < dg.MIN_DRAWS:
        raise ConfigError(f"need --num-data >= 1 and --particles >= {dg.MIN_DRAWS} (k-hat needs many draws; 200 is a good start), got {num_data} and {particles}")
    run = check_path(run, "the run folder")
    if data is not None:
        parse_spec(data)  # a spec at all (not an array), before the slow part
    model = load(run)
    compare = gold_standard_for(model) if nuts else None  # refuse before the slow part
    if not model.has_elbo:  # no likelihood (the GAN): no posterior to check, its samples are what is diagnosed
        return diagnose_generator(run, model, data, out, split=split, num_data=num_data, seed=seed, data_dir=data_dir, report=report, overwrite=overwrite)
    check_particles_memory(model.config.x_shape, particles, num_data, f"--particles {particles} for --num-data {num_data}",
                           "ask for fewer --particles or --num-data")
    run_config = read_json(run / CONFIG)
    out, names = checked_outputs(run, out, report, overwrite)
    dataset, train_data = diagnosed_data(run_config, data, data_dir, run)
    model.check_dataset(dataset)
    x, y = select_split(dataset, split)
    unlabeled_split = y is None or not bool((y >= 0).any())
    idx = choose_data(num_data, len(x), seed)
    x, y = x[idx], None if y is None else y[idx]
    idata = posterior_idata(model, x, y, num_draws=particles, seed=seed, datum_index=idx, batch_size=batch_size)
    if has_own_log_weights(model):
        add_model_log_weights(idata, model, x, particles, seed, batch_size)
    idata.sample_stats.attrs[PRIOR_SAMPLED] = ",".join(prior_sampled_sites(*trace_particles(model, model.check_x(x[:2]), 1)))
    records = read_metrics(run)
    add_training_trace(idata, records)
    if isinstance(model, CanClassify) and y is not None:
        add_class_probabilities(idata, model.predict_proba(x), seed)
    train_errors = None
    if train_data is not None and split != "train":
        train_x = train_data.split("train").x
        train_errors = train_reconstruction_errors(model, train_x, len(idx), min(particles, 20), seed, batch_size)
    baseline_x = None
    if train_data is not None:
        train_x = train_data.split("train").x
        baseline_x = np.asarray(train_x[choose_data(BASELINE_ROWS, len(train_x), seed + 3)])
    result = compute_diagnostics(model, idata, records, train_errors, seed, min(predictive_draws, particles), baseline_x)
    if nuts:
        result["gold_standard"] = gold_standard(compare, model, train_data, seed, nuts_samples, nuts_warmup, nuts_chains, progress)
        result["nuts_idata"] = result["gold_standard"].pop("idata")
    noun = f"{split} {'images' if dataset.is_image else 'data'}"
    result.update(run=str(run), model=model.name, data=dataset.spec or data, likelihood=model.config.likelihood, split=split, num_data=len(idx), particles=particles,
                  seed=seed, verdicts=dg.verdicts(result, noun))
    if isinstance(model, CanClassify) and unlabeled_split:  # no labeled row to diagnose: no calibration, no accuracy
        own = data is None or data == run_config.get("data", {}).get("spec")
        result["verdicts"]["calibration"] = no_labels_note(str(run), split, dataset.spec or data, own and dataset.partly_labeled)
    if nuts:
        result["verdicts"]["gold_standard"] = gold_standard_verdict(result["gold_standard"])
        result["verdicts"]["nuts_sampler"] = sampler_verdict(result["gold_standard"]["sampler"])
    result["overall"] = dg.overall_verdict(result)
    if quality:
        add_sample_quality(result, model, dataset, split, seed)
    idata = thinned(idata, stored_draws)  # the diagnostics used every draw; the file keeps the first stored_draws
    with output_lock(out / DIAGNOSTICS):  # a run folder's lock while its files are written: one writer at a time
        out.mkdir(parents=True, exist_ok=True)
        save_idata(idata, out / IDATA)
        if nuts:
            save_idata(result["nuts_idata"], out / NUTS_IDATA)
        write_json(out / DIAGNOSTICS, json_ready(summary_only(result)))
        if report:
            from ..analysis.report import write_report

            write_report(out / REPORT, model, idata, result)
        for name in names:
            record_output(out / name, "diagnose", run)
    result["idata"] = idata
    return result


#: ``--nuts`` refuses training data with more values (rows x features) than this: NUTS cost grows with both
NUTS_MAX_VALUES = 200_000


def gold_standard(compare, model, train_data, seed: int, samples: int, warmup: int, chains: int, progress: bool = False) -> dict[str, Any]:
    """NUTS against the SVI fit on the very training data the fit saw (like with like: a subset has another principal
    subspace), refused above :data:`NUTS_MAX_VALUES` values."""
    if train_data is None:
        raise RunError("--nuts needs the run's own training data, which cannot be opened any more; check --data-dir")
    train_x = train_data.split("train").x
    values = len(train_x) * int(np.prod(train_x.shape[1:]))
    if values > NUTS_MAX_VALUES:
        raise ConfigError(f"--nuts samples the posterior on all {len(train_x)} training data the fit saw ({values:,} values); above "
                          f"{NUTS_MAX_VALUES:,} NUTS would run for hours: fit the model on fewer data or features to compare it with NUTS")
    x = np.asarray(train_x)
    return compare(model, x, samples, warmup, chains, seed, fit_x=train_x, progress=progress)


def summary_only(result: dict) -> dict:
    """``result`` without the bulky per-datum and per-feature arrays (k-hat per datum stays: it is what the plot shows)."""
    drop = {("log_likelihood", "per_datum"), ("pit", "pit"), ("pit", "feature_mean"), ("pit", "ecdf_values")}
    return {key: ({k: v for k, v in value.items() if (key, k) not in drop} if isinstance(value, dict) else value)
            for key, value in result.items() if key not in ("reconstruction_error", "train_reconstruction_error", "idata", "nuts_idata")}


def json_ready(obj: Any) -> Any:
    """Arrays to lists and non-finite floats to ``None``, so that the file is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def summary_table(result: dict) -> str:
    """A short plain-text table of the headline numbers of a :func:`diagnose` result."""
    if result.get("generator_only"):
        return generator_summary_table(result)
    khat, ll = result["khat"], result["log_likelihood"]
    approximate = result.get("guide_samples_latents", True) and not khat.get("exact")  # else constant weights: no k-hat
    rows = [("data points x draws", f"{result['num_data']} x {result['particles']} ({result['data']}, {result['split']})")]
    if approximate:
        rows.append((f"k-hat > {khat['threshold']:.2f} / > 0.5", f"{100 * khat['frac_above_threshold']:.1f}%"
                     + (f" +- {100 * khat['frac_above_threshold_mc_se']:.1f} (MC)" if math.isfinite(khat["frac_above_threshold_mc_se"]) else "")
                     + f" / {100 * khat['frac_above_0.5']:.1f}%  (median {khat['median']:.2f})"))
    rows += [("IW log-likelihood", f"{ll['iw']:.2f} +- {ll['iw_se']:.2f}  (PSIS {ll['psis']:.2f})"),
             ("ELBO (guide draws)", f"{ll['elbo']:.2f} +- {ll['elbo_se']:.2f}  (gap {ll['gap']:.2f} +- {ll['gap_se']:.2f})")]
    optional = {
        "calibration": lambda c: ("accuracy / ECE", f"{100 * c['accuracy']:.1f}% / {c['ece']:.3f}"),
        "pit": lambda p: p.get("tail_fraction") is not None and
        ("PIT tails (uniform 10%)", f"{100 * p['tail_fraction']:.1f}%  (KS {p['ks_distance']:.3f})"),
        "reconstruction": lambda r: ("recon. error held-out - train", f"{r['difference']:+.2f} +- {r['difference_se']:.2f} nats"),
        "gold_standard": lambda g: ("NUTS max R-hat / SVI furthest out", f"{g['max_rhat']:.3f} / {g['most_extreme']} at quantile "
                                                                         f"{g['quantities'][g['most_extreme']]['quantile']:.4f}, max |z| {g['max_abs_z']:.2f}  (min ESS {g['min_ess']:.0f})"),
        "nuts_sampler": lambda s: ("NUTS divergences / E-BFMI", f"{s['divergences']} / {min(s['bfmi']):.2f}-{max(s['bfmi']):.2f}  "
                                                                  f"(mean tree depth {s['mean_tree_depth']:.1f}, {s['tree_depth_hits']} at the limit)"),
        "convergence": lambda c: c.get("slope") is not None and
        ("ELBO slope, last epochs", f"{c['slope']:+.3f} per epoch  (best epoch {c['best_epoch']}, {c['epochs_since_best']} ago; "
                                    f"diagnosed: epoch {c.get('selected_epoch', c['best_epoch'])} of {c.get('last_epoch', '?')})"),
    }
    sources = {**result, "nuts_sampler": (result.get("gold_standard") or {}).get("sampler")}
    rows += [row for key, make in optional.items() if sources.get(key) and (row := make(sources[key]))]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["", *(f"{name}: {text}" for name, text in result["verdicts"].items())]
    return "\n".join(lines)


# ----- the sample-quality yardstick, and models without a likelihood (the GAN) ----------------------------------
def add_sample_quality(result: dict, model, dataset, split: str, seed: int) -> None:
    """``result["sample_quality"]`` of :func:`~ppmodels.analysis.sample_quality.generator_quality` (as many samples as
    ``split`` has, at most 10,000, as ``ppmodels evaluate``), its verdict, and dropped classes among the overall
    problems (as warnings: the posterior checks judge the fit, the samples are a second opinion); nothing for a model
    that does not sample or data the yardstick cannot measure."""
    if not isinstance(model, CanSample) or split not in dataset.splits:
        return
    quality, _ = generator_quality(model, dataset, split, num_samples=min(len(dataset.splits[split]), 10_000), seed=seed)
    if quality is None:
        return
    result["sample_quality"] = quality
    result["verdicts"]["sample_quality"] = " ".join(quality_verdicts(quality, split=split).values())
    collapse = [{**p, "severity": "warning"} for p in quality_problems(quality)]
    if collapse:
        problems = result["overall"]["problems"] + collapse
        result["overall"] = {"status": max((p["severity"] for p in problems), key=dg.STATUSES.index), "problems": problems}


def diagnose_generator(run: Path, model, data: str | None, out: str | Path | None, *, split: str = "test", num_data: int = 500, seed: int = 0,
                       data_dir: str | None = None, report: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """:func:`diagnose` of a model without a likelihood: no posterior, ELBO or k-hat, so the yardstick of
    :mod:`ppmodels.analysis.sample_quality` on as many samples as ``split`` has (at most 10,000, as ``ppmodels
    evaluate``), the discriminator's checks of the run's summary, the per-epoch losses and Frechet distances of
    ``metrics.jsonl``, and ``overall`` from :func:`~ppmodels.analysis.sample_quality.quality_problems`. ``idata.nc``
    holds ``num_data`` generator draws (``prior`` z, ``prior_predictive`` x) beside as many observed data."""
    run_config = read_json(run / CONFIG)
    out, names = checked_outputs(run, out, report, overwrite)
    dataset, _ = open_applied_data(run_config, data, data_dir, run)
    dataset = model.check_dataset(dataset)
    x, _ = select_split(dataset, split)
    summary = read_json(run / SUMMARY) if (run / SUMMARY).is_file() else {}
    checks = {k: summary[k] for k in ("discriminator_real", "discriminator_fake", "discriminator_accuracy") if k in summary}
    records = read_metrics(run)
    quality, _ = generator_quality(model, dataset, split, num_samples=min(len(x), 10_000), seed=seed, checks=checks, records=records)
    problems = quality_problems(quality, checks, records)
    result = {"run": str(run), "model": model.name, "data": dataset.spec or data, "split": split, "seed": seed, "generator_only": True,
              "likelihood": "none (no p(x | z): no ELBO, log p(x) or posterior to check)", "num_data": min(num_data, len(x)),
              "sample_quality": quality, "fit_checks": checks, "training": generator_trace(records),
              "verdicts": quality_verdicts(quality, checks, records, split), "verdict_titles": QUALITY_TITLES,
              "overall": {"status": "bad" if problems else "good", "problems": problems}}
    idata = generator_idata(model, np.asarray(x[choose_data(result["num_data"], len(x), seed)]), seed)
    with output_lock(out / DIAGNOSTICS):  # as diagnose: one writer at a time
        out.mkdir(parents=True, exist_ok=True)
        save_idata(idata, out / IDATA)
        write_json(out / DIAGNOSTICS, json_ready(result))
        if report:
            from ..analysis.report import write_generator_report

            write_generator_report(out / REPORT, model, result)
        for name in names:
            record_output(out / name, "diagnose", run)
    result["idata"] = idata
    return result


def generator_trace(records: list[dict]) -> dict[str, list]:
    """The per-epoch columns of a generator's ``metrics.jsonl``: ``epoch``, each group's loss (``loss_*``) and the
    Frechet distance (``None`` where not logged or not finite)."""
    keys = sorted({k for r in records for k in r if k.startswith("loss_")}) + ["frechet_distance"]
    return {"epoch": [r["epoch"] for r in records], **{k: [r.get(k) for r in records] for k in keys}}


def generator_idata(model, real: np.ndarray, seed: int):
    """An InferenceData of ``len(real)`` generator draws (one chain): ``prior`` z, ``prior_predictive`` x = G(z), and
    ``real`` as ``observed_data`` x (by ``datum``), the features named as in :func:`posterior_idata`."""
    az = dg._arviz()
    codes = model.sample_codes(len(real), torch.Generator().manual_seed(seed))
    x_dims = feature_dims(model.config.x_shape)
    return az.InferenceData(prior=az.dict_to_dataset({"z": codes[None]}, dims={"z": ["z_dim"]}),
                            prior_predictive=az.dict_to_dataset({"x": model.decode(codes)[None]}, dims={"x": x_dims}),
                            observed_data=xr.Dataset({"x": (["datum", *x_dims], real)}))


def generator_summary_table(result: dict) -> str:
    """The plain-text headline of :func:`diagnose_generator`: the yardstick's numbers, then one verdict per question."""
    quality, checks = result.get("sample_quality"), result.get("fit_checks") or {}
    rows = [("model", f"{result['model']} (no likelihood: samples judged, {result['data']}, {result['split']} split)")]
    if quality:
        shares = quality["coverage"]["shares"]
        rows += [("Frechet distance", f"{quality['frechet_distance']:.3f}  ({quality['num_samples']} samples)"),
                 ("precision / recall", f"{quality['precision']:.3f} / {quality['recall']:.3f}"),
                 ("class shares of samples", f"{min(shares):.1%} to {max(shares):.1%}, {quality['coverage']['num_low_classes']} under a tenth of their share")]
    if "discriminator_accuracy" in checks:
        rows.append(("discriminator accuracy", f"{checks['discriminator_accuracy']:.1%}  (D(x) {checks['discriminator_real']:.2f}, D(G(z)) {checks['discriminator_fake']:.2f})"))
    width = max(len(name) for name, _ in rows)
    return "\n".join([f"{name:<{width}}  {value}" for name, value in rows] + [""] + [f"{name}: {text}" for name, text in result["verdicts"].items()])

