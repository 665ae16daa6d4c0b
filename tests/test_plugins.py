"""User models: the Student-t VAE of docs/examples trains through the CLI, and new processes find it again."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ppmodels
from ppmodels.errors import ConfigError
from ppmodels.plugins import import_plugin, plugin_of
from ppmodels_cli.main import app

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "student_t_vae.py"
BIN = Path(sys.executable).parent
FAST = ["--epochs", "2", "--batch-size", "256", "--quiet", "--sample-every", "0", "--set", "hidden=[16]", "--set", "z_dim=2"]


@pytest.fixture(scope="module")
def student_t_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "student-t"
    result = CliRunner().invoke(app, ["--plugin", str(EXAMPLE), "train", "student_t_vae", "--data", "digits", "--out", str(run), *FAST])
    assert result.exit_code == 0, result.output
    return run


def fresh_process(*args, env=None):
    """Run a command in a new process, where the example has not been imported."""
    base = {k: v for k, v in os.environ.items() if k != "PPMODELS_PLUGINS"}
    env = {**base, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=300)


def test_the_run_records_the_plugin_and_trains(student_t_run):
    config = json.loads((student_t_run / "config.json").read_text())
    assert config["model"] == "student_t_vae" and config["plugins"] == [str(EXAMPLE)]
    assert config["model_config"]["df"] == 4.0
    summary = json.loads((student_t_run / "summary.json").read_text())
    assert summary["epochs"] == 2 and np.isfinite(summary["test_elbo"])


def test_the_model_is_a_student_t_pyro_model(student_t_run):
    model = ppmodels.load(student_t_run)
    x = torch.from_numpy(ppmodels.load_dataset("digits").x[:4])
    trace = pyro_trace(model, x)
    assert type(trace.nodes["x"]["fn"].base_dist).__name__ == "StudentT" and trace.nodes["z"]["value"].shape == (4, 2)
    assert model.transform(x).shape == (4, 2) and model.sample(3).shape == (3, 1, 8, 8)


def test_two_instances_of_the_example_keep_their_own_parameters_under_plain_svi():
    """The example registers its networks under the instance's ``pyro_name``: plain SVI on one of two Student-t VAEs
    moves its parameters and leaves the other's alone, either way round."""
    from tests.models.test_plain_svi import snapshot, svi_steps

    cls = import_plugin(str(EXAMPLE)).StudentTVAE
    x = torch.from_numpy(ppmodels.load_dataset("digits").x[:50])
    first, second = (cls(x_shape=[1, 8, 8], hidden=[8], z_dim=2) for _ in range(2))
    for trained, other in ((first, second), (second, first)):
        before_trained, before_other = snapshot(trained), snapshot(other)
        svi_steps(trained, x, None, steps=2)
        assert all(not torch.equal(v, before_trained[k]) for k, v in snapshot(trained).items()), "SVI left a parameter of its own model unchanged"
        assert all(torch.equal(v, before_other[k]) for k, v in snapshot(other).items()), "SVI on one instance changed the other"


def pyro_trace(model, x):
    from pyro import poutine

    return poutine.trace(poutine.replay(model.model, trace=poutine.trace(model.guide).get_trace(x))).get_trace(x)


def test_a_new_process_loads_the_run_once_told_the_plugin(student_t_run, tmp_path):
    load = f"m = ppmodels.load({str(student_t_run)!r}); print(m.name, type(m).__name__)"
    done = fresh_process(sys.executable, "-c", f"import ppmodels; ppmodels.import_plugin({str(EXAMPLE)!r}); {load}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["student_t_vae", "StudentTVAE"]
    done = fresh_process("ppmodels", "--plugin", str(EXAMPLE), "sample", str(student_t_run), "--num", "4", "--out", str(tmp_path / "s.npy"))
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 8, 8)
    # a run folder alone does not make ppmodels import (run) the plugin it names
    refused = fresh_process("ppmodels", "sample", str(student_t_run), "--out", str(tmp_path / "t.npy"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert f"comes from the plugin {EXAMPLE}, which is not imported: pass --plugin" in refused.stderr


def test_the_environment_variable_registers_plugins(student_t_run, tmp_path):
    done = fresh_process("ppmodels", "encode", str(student_t_run), "--data", "digits", "--out", str(tmp_path / "z.npz"),
                         env={"PPMODELS_PLUGINS": str(EXAMPLE)})
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "z.npz") as z:
        assert z["z_loc"].shape == (1797, 2)


def test_import_is_cached_and_built_in_models_need_no_plugin():
    assert import_plugin(str(EXAMPLE)) is import_plugin(str(EXAMPLE))
    assert plugin_of(ppmodels.get_model_class("vae")) is None
    assert plugin_of(ppmodels.get_model_class("student_t_vae")) == str(EXAMPLE)


@pytest.mark.parametrize("spec, message", [("no/such/file.py", "does not exist"), ("no_such_module_xyz", "cannot be imported")])
def test_bad_plugins_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        import_plugin(spec)


def test_a_broken_plugin_names_the_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="failed to import .*boom"):
        import_plugin(str(broken))
