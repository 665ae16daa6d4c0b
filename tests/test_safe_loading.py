"""No file ppmodels loads can run code: weights, checkpoints and data files crafted to run code when unpickled
are refused with a clear error, and the code does not run."""

from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import ppmodels
from ppmodels import load, load_dataset
from ppmodels.errors import DataError, RunError
from ppmodels.models import VAE
from ppmodels.files import load_checkpoint
from ppmodels.runs import save_model


class Bomb:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "the pickle payload ran"


def test_the_bomb_is_live(tmp_path, marker):
    """The payloads below would run if unpickled: prove it once, with plain pickle, then clean up."""
    pickle.loads(pickle.dumps(Bomb(marker)))
    assert marker.exists()
    marker.unlink()


# torch notes that a raw pickle's protocol is not the one torch.save writes: expected for the hand-made file
@pytest.mark.parametrize("writer", ["torch zip", "torch legacy", pytest.param(
    "raw pickle", marks=pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning"))])
def test_checkpoint_with_a_payload_is_refused(tmp_path, marker, writer):
    path = tmp_path / "last.pt"
    payload = {"model": Bomb(marker), "state": {"epoch": 1}}
    if writer == "torch zip":
        torch.save(payload, path)
    elif writer == "torch legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(RunError, match="cannot be loaded safely"):
        load_checkpoint(path)


def test_resume_from_a_checkpoint_with_a_payload_is_refused(tmp_path, marker):
    run = tmp_path / "run"
    options = {"hidden": [8], "z_dim": 2}
    ppmodels.train("vae", "digits", run, train_config=ppmodels.TrainConfig(epochs=1, batch_size=256), model_options=options, progress=False)
    torch.save({"model": Bomb(marker)}, run / "checkpoints" / "last.pt")
    with pytest.raises(RunError, match="cannot be loaded safely"):
        ppmodels.train("vae", "digits", run, resume=True, progress=False)


@pytest.mark.parametrize("writer", ["torch", "raw pickle"])
def test_weights_file_with_a_payload_is_refused(tmp_path, marker, writer):
    save_model(VAE(x_shape=[4], z_dim=2, hidden=[4]), tmp_path)
    weights = tmp_path / "model.safetensors"
    if writer == "torch":
        torch.save({"encoder.net.0.weight": Bomb(marker)}, weights)
    else:
        weights.write_bytes(pickle.dumps(Bomb(marker)))
    with pytest.raises(RunError, match="truncated or corrupt"):
        load(tmp_path)


@pytest.mark.parametrize("where", ["x", "y"])
def test_npz_with_pickled_objects_is_refused(tmp_path, marker, where):
    arrays = {"x": np.ones((10, 3)), "y": np.arange(10) % 2}
    arrays[where] = np.array([Bomb(marker)] * 10, dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(DataError, match="holds Python objects"):
        load_dataset(f"npz:{tmp_path}/evil.npz")


def test_npy_with_pickled_objects_is_refused(tmp_path, marker):
    np.save(tmp_path / "evil.npy", np.array([Bomb(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="holds Python objects"):
        load_dataset(f"npy:{tmp_path}/evil.npy")


UNSAFE = {"pickle.load", "pickle.loads", "pickle.Unpickler", "joblib.load", "dill.load", "dill.loads", "cloudpickle.load",
          "cloudpickle.loads", "torch.jit.load", "pd.read_pickle", "pandas.read_pickle"}


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), {k.arg: ast.unparse(k.value) for k in node.keywords}


def test_no_loader_in_the_library_can_unpickle():
    """Every load call in ppmodels/ is one that refuses pickles: a guard against a future torch loader call without weights_only."""
    root = Path(ppmodels.__file__).parent
    problems = []
    for path in root.rglob("*.py"):
        for func, kwargs in calls(ast.parse(path.read_text())):
            where = f"{path.relative_to(root)}: {func}"
            if func in UNSAFE:
                problems.append(where)
            elif func == "torch.load" and kwargs.get("weights_only") != "True":
                problems.append(where + " without weights_only=True")
            elif func in ("np.load", "numpy.load") and kwargs.get("allow_pickle") != "False":
                problems.append(where + " without allow_pickle=False")
    assert not problems, problems


def test_a_run_naming_a_plugin_does_not_import_it(tmp_path, marker):
    """config.json may name the plugin file of a user model; loading or resuming the run must not run that file."""
    from ppmodels import evaluate

    plugin = tmp_path / "evil_plugin.py"
    plugin.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    run = tmp_path / "run"
    ppmodels.train("vae", "digits", run, train_config=ppmodels.TrainConfig(epochs=1, batch_size=256),
                   model_options={"hidden": [8], "z_dim": 2}, progress=False, sample_every=0)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "model": "evil", "plugins": [str(plugin)]}))
    for attempt in (lambda: load(run), lambda: evaluate(run, iw_samples=0),
                    lambda: ppmodels.train("evil", "digits", run, resume=True, progress=False)):
        with pytest.raises(RunError, match="which is not imported: pass --plugin"):
            attempt()
