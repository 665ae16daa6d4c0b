"""Run folders are portable: a run finds its data, and a mixture on ``latents:RUN`` finds RUN, from another working
directory and after the folders moved together; what changed under a run is refused (tests/cli/test_hostile_input.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import ppmodels
from ppmodels.infer import TrainConfig
from ppmodels.runs import fingerprint, run_config
from ppmodels_cli.main import app

TINY = {"hidden": [8], "z_dim": 2}


def train(model: str, spec: str, out: str, **options) -> None:
    ppmodels.train(model, spec, out, train_config=TrainConfig(epochs=1, batch_size=256), model_options=options or TINY,
                   progress=False, sample_every=0)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """``project/``: a data file, a VAE trained on it and a mixture on the VAE's codes, all named by relative paths
    from the project folder, as a user types them."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(root / "data" / "cells.npz", x=rng.random((90, 6)).astype(np.float32), y=np.arange(90) % 3)
    monkeypatch.chdir(root)
    train("vae", "npz:data/cells.npz", "runs/vae")
    train("gmm", "latents:runs/vae", "runs/gmm", num_components=2)
    return root


def evaluate_cli(run) -> str:
    result = CliRunner().invoke(app, ["evaluate", str(run), "--iw-samples", "2"])
    assert result.exit_code == 0, result.output
    return result.output


def test_config_records_where_the_data_is_and_its_checksum(project):
    data = run_config(project / "runs" / "vae")["data"]
    assert data["spec"] == "npz:data/cells.npz"
    assert data["location"] == {"typed": "data/cells.npz", "absolute": str(project / "data" / "cells.npz"),
                                "relative": "../../data/cells.npz", "sha256": fingerprint(project / "data" / "cells.npz")}
    upstream = run_config(project / "runs" / "gmm")["data"]["location"]
    assert upstream["relative"] == "../vae" and upstream["sha256"] == fingerprint(project / "runs" / "vae" / "model.safetensors")


def test_evaluate_from_another_working_directory(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    output = evaluate_cli(project / "runs" / "vae")
    assert f"data: {project / 'data' / 'cells.npz'} (found at its recorded absolute path)" in output
    assert "gmm on latents:runs/vae" in evaluate_cli(project / "runs" / "gmm")


def test_folders_moved_together_still_evaluate_sample_and_resume(project, tmp_path, monkeypatch):
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    monkeypatch.chdir(tmp_path)
    output = evaluate_cli(moved / "runs" / "vae")
    assert f"data: {moved / 'data' / 'cells.npz'} (found relative to the run folder {moved / 'runs' / 'vae'})" in output
    assert f"data: {moved / 'runs' / 'vae'} (found relative to the run folder" in evaluate_cli(moved / "runs" / "gmm")
    mixture = ppmodels.load(moved / "runs" / "gmm")
    assert mixture.config.decoder_run == str(moved / "runs" / "vae")  # decodes with the VAE where it is now
    result = CliRunner().invoke(app, ["sample", str(moved / "runs" / "gmm"), "--num", "4", "--out", "s.npy"])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "s.npy").shape == (4, 6)
    config = json.loads((moved / "runs" / "vae" / "config.json").read_text())
    config["train"]["epochs"] = 2
    (moved / "runs" / "vae" / "config.json").write_text(json.dumps(config))
    _, summary = ppmodels.train("vae", out=moved / "runs" / "vae", resume=True, progress=False)
    assert summary["epochs"] == 2


def test_a_copy_of_the_data_beside_the_moved_run_is_used_when_the_original_changed(project, tmp_path, monkeypatch):
    """The recorded absolute path still exists but holds other data; the copy that travelled with the run matches."""
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    np.savez(project / "data" / "cells.npz", x=np.zeros((90, 6), np.float32), y=np.arange(90) % 3)
    monkeypatch.chdir(tmp_path)
    assert f"data: {copy / 'data' / 'cells.npz'} (found relative to the run folder" in evaluate_cli(copy / "runs" / "vae")


def test_a_run_whose_data_is_gone_says_where_it_looked(project, tmp_path, monkeypatch):
    (project / "data" / "cells.npz").unlink()
    result = CliRunner().invoke(app, ["evaluate", str(project / "runs" / "vae"), "--iw-samples", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: the data of run {project / 'runs' / 'vae'} is gone: neither {project / 'data' / 'cells.npz'} "
                                     "nor ../../data/cells.npz relative to the run folder exists; put it back, or pass --data to use other data")


def test_data_named_as_the_run_named_it_is_opened_as_given(project):
    """--data with the run's own spec after the file moved, or changed: the hint may not be "pass --data" (it was
    passed). A moved file is said not to exist; a changed one is evaluated as given, as other data is."""
    (project / "data" / "cells.npz").rename(project / "cells_moved.npz")
    result = CliRunner().invoke(app, ["evaluate", "runs/vae", "--data", "npz:data/cells.npz", "--iw-samples", "0"])
    assert result.exit_code == 2 and "pass --data" not in result.stderr
    assert result.stderr.strip() == "error: data file data/cells.npz does not exist; check the path", result.stderr
    np.savez(project / "data" / "cells.npz", x=np.zeros((30, 6), np.float32), y=np.arange(30) % 3)  # other data under the old name
    result = CliRunner().invoke(app, ["evaluate", "runs/vae", "--data", "npz:data/cells.npz", "--iw-samples", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((project / "runs" / "vae" / "evaluation.json").read_text())["num_examples"] <= 30


def test_only_paths_on_disk_are_recorded(tmp_path):
    from ppmodels.runs import data_locations

    assert data_locations("digits", None, tmp_path) == {}
    assert data_locations("npz:not/on/disk.npz", None, tmp_path) == {}  # e.g. a plugin source's own kind of name
    found = data_locations("mnist", str(tmp_path), tmp_path / "run")
    assert found == {"data_dir_location": {"typed": str(tmp_path), "absolute": str(tmp_path), "relative": "..", "sha256": None}}
