"""Analysis of fitted models: posterior diagnostics, baselines, ArviZ InferenceData export, the NUTS
gold standard and the HTML report. Plain functions over models and arrays; they never train or write run folders."""
