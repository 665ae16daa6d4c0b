import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generators.py"


def test_generators_benchmark_runs_and_writes_its_rows(tmp_path):
    spec = importlib.util.spec_from_file_location("generators_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "g.json"
    tiny = {"vae": {"hidden": [16], "z_dim": 2}, "gan": {"z_dim": 4, "channels": [8, 16]}}
    bench.main(["--models", "vae,gan", "--seeds", "0", "--seconds", "0", "--iw-samples", "3", "--set-json", json.dumps(tiny), "--precision", "bf16",
                "--curve-every", "1", "--split-check", "--out", str(out)])
    saved = json.loads(out.read_text())
    runs = {r["model"]: r for r in saved["runs"]}
    assert set(runs) == {"vae", "gan"} and all(r["epochs"] == 1 for r in runs.values())  # stopped after the first epoch
    assert runs["gan"]["iw_log_px"] == "not available" and saved["summary"]["gan"]["iw_log_px"] == "not available"
    assert runs["vae"]["iw_log_px"] < 0 and runs["vae"]["config"]["z_dim"] == 2
    assert saved["train_precision"] == "bf16" and all(r["train_precision"] == "bf16" for r in runs.values())  # reaches each model's child process
    for r in runs.values():
        assert r["frechet_distance"] > 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and len(r["class_shares"]) == 10
        assert [point["epoch"] for point in r["curve"]] == [1] and r["curve"][0]["frechet_distance"] > 0  # --curve-every 1
    check = runs["gan"]["split_check"]  # --split-check: both sizes that the splits allow, both splits, three sample seeds
    sizes = sorted({cell["samples"] for cell in check["samples_against_split"]})
    assert sizes == [180] and len(check["samples_against_split"]) == 2 * 3  # digits: the validation split's 180, not 1000
    assert all(cell["frechet_distance"] > 0 for cell in check["samples_against_split"]) and check["valid_against_test"]["180"] >= 0
