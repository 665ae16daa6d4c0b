import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ppmodels import load
from ppmodels.errors import RunError
from ppmodels.models import VAE
from ppmodels.files import atomic_write, load_checkpoint, save_checkpoint
from ppmodels.runs import prepare_run_dir
from ppmodels.runs import save_model


def test_save_load_gives_identical_outputs(tmp_path, digits):
    vae = VAE(x_shape=[1, 8, 8], z_dim=3, hidden=[16])
    save_model(vae, tmp_path)
    again = load(tmp_path)
    x = digits.split("test").x
    assert type(again) is VAE and again.config == vae.config
    assert np.array_equal(again.transform(x), vae.transform(x))
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "vae"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def crash(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_pickle_payload_does_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "last.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(RunError, match="cannot be loaded safely"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_weights_are_refused(tmp_path):
    save_model(VAE(x_shape=[4], z_dim=2, hidden=[4]), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(RunError, match="truncated or corrupt"):
        load(tmp_path)


def test_weights_from_another_config_are_refused(tmp_path):
    save_model(VAE(x_shape=[4], z_dim=2, hidden=[4]), tmp_path / "a")
    save_model(VAE(x_shape=[4], z_dim=3, hidden=[4]), tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(RunError, match="does not fit model 'vae'"):
        load(tmp_path / "a")


def test_checkpoint_round_trip(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(3), "epoch": 4, "rng": torch.get_rng_state()})
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 4


def test_existing_run_folder_is_protected(tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    (run / "config.json").write_text("{}")
    with pytest.raises(RunError, match="--overwrite"):
        prepare_run_dir(run)
    assert prepare_run_dir(run, overwrite=True).is_dir()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(RunError, match="not a ppmodels run folder"):
        prepare_run_dir(other, overwrite=True)
    assert (other / "thesis.tex").exists()


def test_atomic_write_gives_files_the_usual_permissions(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text("{}"))
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert (path.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)
