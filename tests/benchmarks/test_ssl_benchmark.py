import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ssl.py"


def test_ssl_benchmark_runs_and_writes_its_rows(tmp_path):
    spec = importlib.util.spec_from_file_location("ssl_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "r.json"
    rows = bench.main(["--dataset", "digits", "--labels", "20", "--seeds", "0,1", "--models", "m2,m1m2,svc", "--epochs", "2",
                       "--eval-every", "1", "--set-json", '{"m2": {"hidden": [16], "z_dim": 2}, "m1m2": {"m1_epochs": 1, "m1_hidden": [16], "m2_hidden": [16]}}',
                       "--out", str(out)])
    saved = json.loads(out.read_text())
    assert len(rows) == 6 and saved["rows"] == json.loads(json.dumps(rows))
    assert set(saved["summary"]) == {"m2", "m1m2", "svc"} and saved["summary"]["m2"]["seeds"] == 2
    for row in saved["rows"]:
        assert {"dataset", "model", "num_labels", "seed", "test_error_pct", "balanced_accuracy", "wall_time_s", "peak_memory_mb"} <= set(row)
        assert 0 <= row["test_error_pct"] <= 100
    m1m2 = [r for r in saved["rows"] if r["model"] == "m1m2"]
    assert all(r["epochs"] == 2 and [p["epoch"] for p in r["curve"]] == [2] for r in m1m2)  # the curve starts with stage m2
