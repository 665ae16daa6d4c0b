"""Options declared once (ppmodels/config.py): every config refuses bad values with one ConfigError line naming the
option as the user sets it, whatever builds it; configs written before the declarations still load; the docs' option
tables are the fields'."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ppmodels import ConfigError, TrainConfig
from ppmodels.config import config_dataclass, default_of, option_fields
from ppmodels.models import (VAE, ADGMConfig, GMMConfig, M1Config, M1M2Config, M2Config, ModelConfig, PPCAConfig, PPModel, VAEConfig,
                             get_model_class, list_models)
from ppmodels.models.options import with_table
from ppmodels.runs.folder import build_model

ROOT = Path(__file__).resolve().parents[1]
#: ``dataclasses.asdict`` of each model's config (x_shape and likelihood set) and of ``TrainConfig()``, as the code
#: before the pydantic declarations wrote them into config.json (main at 487f2f7)
OLD_CONFIGS = {
    'adgm': {"x_shape": [1, 8, 8], "likelihood": "gaussian", "seed": None, "net": "mlp", "channels": [32, 64],
     "corruption": "none", "noise_level": 0.0, "num_classes": 10, "z_dim": 100, "hidden": [500, 500],
     "activation": "softplus", "alpha": 10.0, "labeled_weight": None, "class_prior": "uniform",
     "balanced_labeled": True, "labeled_batch_size": None, "a_dim": 100},
    'gmm': {"x_shape": [5], "likelihood": "gaussian", "seed": None, "num_components": 10, "min_scale": 0.001,
     "decoder_run": ""},
    'gmvae': {"x_shape": [1, 8, 8], "likelihood": "gaussian", "seed": None, "net": "mlp", "channels": [32, 64],
     "corruption": "none", "noise_level": 0.0, "z_dim": 10, "hidden": [256, 256], "activation": "relu",
     "x_scale": "feature", "num_components": 10, "prior_spread": 2.0, "init_from": ""},
    'm1': {"x_shape": [1, 8, 8], "likelihood": "gaussian", "seed": None, "net": "mlp", "channels": [32, 64],
     "corruption": "none", "noise_level": 0.0, "z_dim": 50, "hidden": [500], "activation": "relu",
     "x_scale": "feature", "num_classes": 10, "classifier": "label_spreading", "neighbors": 10, "features": "loc",
     "num_feature_samples": 10, "C": 10.0, "class_weight": "none"},
    'm1m2': {"x_shape": [1, 8, 8], "likelihood": "gaussian", "seed": None, "num_classes": 10, "z1_dim": 50,
     "z2_dim": 50, "m1_hidden": [500], "m2_hidden": [500], "activation": "softplus", "alpha": None,
     "labeled_weight": 1.0, "class_prior": "uniform", "balanced_labeled": True, "labeled_batch_size": None,
     "m1_epochs": None, "m1_binarize": None, "drop_inactive": True, "active_std": 0.1, "z1_draws": "epoch"},
    'm2': {"x_shape": [1, 8, 8], "likelihood": "gaussian", "seed": None, "net": "mlp", "channels": [32, 64],
     "corruption": "none", "noise_level": 0.0, "num_classes": 10, "z_dim": 50, "hidden": [500],
     "activation": "softplus", "alpha": 10.0, "labeled_weight": None, "class_prior": "uniform",
     "balanced_labeled": True, "labeled_batch_size": None},
    'ppca': {"x_shape": [5], "likelihood": "gaussian", "seed": None, "z_dim": 2, "init": "closed_form"},
    'vae': {"x_shape": [1, 8, 8], "likelihood": "gaussian", "seed": None, "net": "mlp", "channels": [32, 64],
     "corruption": "none", "noise_level": 0.0, "z_dim": 10, "hidden": [256, 256], "activation": "relu",
     "x_scale": "feature"},
    'train': {"epochs": 100, "batch_size": 100, "lr": 0.001, "patience": 20, "seed": 0, "checkpoint_every": 1,
     "clip_norm": None, "skip_nonfinite": False, "select_by": "auto", "min_epoch_steps": None, "lr_patience": None,
     "lr_factor": 0.5, "precision": "fp32"},
}


@pytest.mark.parametrize("cls, values, message", [
    (VAEConfig, {"z_dim": "abc"}, "option z_dim must be a whole number, got 'abc'; fix --set z_dim=VALUE (default: 10)"),
    (VAEConfig, {"z_dim": True}, "option z_dim must be a whole number, got True"),
    (VAEConfig, {"z_dim": 0}, "option z_dim must be at least 1, got 0; fix --set z_dim=VALUE (default: 10)"),
    (VAEConfig, {"hidden": [64, 0]}, "option hidden must be a list of whole numbers, each at least 1, got [64, 0]"),
    (VAEConfig, {"hidden": [1.5]}, "option hidden must be a list of whole numbers, got [1.5]"),
    (VAEConfig, {"hidden": "64"}, "option hidden must be a list such as [256,256], got '64'"),
    (VAEConfig, {"activation": "gelu"}, "option activation must be one of softplus, relu, tanh, elu, leaky_relu, linear, got 'gelu'"),
    (VAEConfig, {"x_shape": [64], "net": "conv"}, "--net conv needs image data"),
    (VAEConfig, {"corruption": "mask", "noise_level": 1.0}, "the masking rate noise_level must be in [0, 1)"),
    (VAEConfig, {"noise_level": float("nan")}, "option noise_level must be a finite number, got nan"),
    (VAEConfig, {"classifier": "svm"}, "option classifier does not apply to VAEConfig; it takes x_shape, likelihood, seed"),
    (ModelConfig, {"likelihood": "binomial:16"}, "unknown likelihood 'binomial:16' for this model; use one of bernoulli, gaussian"),
    (M1Config, {"classifier": "label_spreading", "features": "sample"}, "classifier=label_spreading takes features=loc"),
    (M2Config, {"alpha": -1.0}, "option alpha must be at least 0, got -1.0; fix --set alpha=VALUE (default: 10.0)"),
    (M2Config, {"class_prior": "empirical"}, "option class_prior must be one of uniform, labeled, learned, got 'empirical'"),
    (ADGMConfig, {"a_dim": 0}, "option a_dim must be at least 1, got 0"),
    (M1M2Config, {"m1_binarize": True, "likelihood": "gaussian"}, "m1_binarize needs the Bernoulli likelihood"),
    (GMMConfig, {"min_scale": 0.0}, "option min_scale must be greater than 0, got 0.0"),
    (PPCAConfig, {"x_shape": [4], "z_dim": 4}, "ppca needs 1 <= z_dim < 4"),
    (TrainConfig, {"lr": 0.0}, "option lr must be greater than 0, got 0.0; fix --lr (default: 0.001)"),
    (TrainConfig, {"lr": float("inf")}, "option lr must be a finite number, got inf; fix --lr"),
    (TrainConfig, {"clip_norm": -1.0}, "option clip_norm must be greater than 0, got -1.0; fix --clip-norm or leave it out"),
    (TrainConfig, {"batch_size": 0}, "option batch_size must be at least 1, got 0; fix --batch-size (default: 100)"),
    (TrainConfig, {"epochs": "10"}, "option epochs must be a whole number, got '10'; fix --epochs"),
    (TrainConfig, {"lr_factor": 1.0}, "option lr_factor must be greater than 0 and less than 1, got 1.0; fix --lr-factor"),
    (TrainConfig, {"patience": 0}, "option patience must be at least 1, got 0; fix --patience (default: 20)"),
])
def test_a_bad_option_is_one_config_error_line(cls, values, message):
    with pytest.raises(ConfigError) as caught:
        cls(**values)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_replace_assignment_and_models_are_checked_the_same_way():
    config = VAEConfig(x_shape=[4])
    with pytest.raises(ConfigError, match="option z_dim must be at least 1"):
        dataclasses.replace(config, z_dim=0)
    with pytest.raises(ConfigError, match="option z_dim must be a whole number"):
        config.z_dim = "3"
    with pytest.raises(ConfigError, match="--net conv needs image data"):
        config.net = "conv"
    assert config.z_dim == 10 and config.net == "mlp"  # a refused assignment leaves the old value
    with pytest.raises(ConfigError, match="option hidden must be a list"):
        VAE(x_shape=[4], hidden=5)
    with pytest.raises(ConfigError, match="option z_dim must be at least 1"):
        VAE(config, z_dim=0)
    with pytest.raises(ConfigError, match="needs x_shape"):
        VAE()
    with pytest.raises(ConfigError, match="config must be a VAEConfig, got dict"):
        VAE({"z_dim": 3})


def test_sizes_may_be_tuples_or_numpy_integers():
    config = VAEConfig(x_shape=np.zeros((2, 1, 8, 8)).shape[1:], hidden=(np.int64(16), 8))
    assert config.x_shape == [1, 8, 8] and config.hidden == [16, 8] and type(config.hidden[0]) is int
    assert TrainConfig(lr=1).lr == 1.0  # a whole number is a number


def test_a_plain_dataclass_config_is_checked_too():
    @dataclasses.dataclass
    class PlainConfig(ModelConfig):
        width: int = 3
        sizes: list[int] = dataclasses.field(default_factory=lambda: [2])

    class Plain(PPModel):
        Config = PlainConfig

    assert PlainConfig(x_shape=[2]).sizes == [2]
    with pytest.raises(ConfigError, match="option width must be a whole number, got 'x'"):
        Plain(x_shape=[2], width="x")


def test_a_plugin_configs_own_validate_still_runs():
    """A plugin written for the earlier API checks its config in ``validate()``; the declared types do not replace it."""
    @dataclasses.dataclass
    class Checked(ModelConfig):
        width: int = 3

        def validate(self) -> None:
            if self.width % 2 == 0:
                raise ConfigError(f"width must be odd, got {self.width}")

    class Plugin(PPModel):
        Config = Checked

    assert Plugin.Config(x_shape=[2], width=5).width == 5
    with pytest.raises(ConfigError, match="width must be odd, got 4"):
        Plugin(x_shape=[2], width=4)


def test_a_config_class_of_its_own_names_its_options_as_declared():
    @config_dataclass
    class Flags:
        option_flag = "--{dashed}"
        num_steps: int = 1

    with pytest.raises(ConfigError, match="fix --num-steps"):
        Flags(num_steps=1.5)


@pytest.mark.parametrize("name", sorted(OLD_CONFIGS))
def test_configs_written_before_the_declarations_still_load(name):
    saved = OLD_CONFIGS[name]
    if name == "train":
        loaded = dataclasses.asdict(TrainConfig(**saved))
    else:
        loaded = dataclasses.asdict(build_model({"model": name, "model_config": saved}).config)
    assert {key: loaded[key] for key in saved} == saved
    # an option added since takes its default (PPCA's optimizer: an old run resumed goes on by EM, not Adam)
    cls = TrainConfig if name == "train" else type(build_model({"model": name, "model_config": saved}).config)
    assert all(loaded[key] == default_of(option_fields(cls)[key]) for key in set(loaded) - set(saved))


@pytest.mark.parametrize("name", ["adgm", "gmm", "gmvae", "m1", "m1m2", "m2", "ppca", "vae"])
def test_the_options_table_of_each_model_page_is_the_fields(name):
    page = ROOT / "docs" / "models" / f"{name}.md"
    text = page.read_text()
    assert with_table(text, get_model_class(name)) == text, (
        f"{page} lists other options than {name}'s config; run `python -m ppmodels.models.options --write`")


def test_every_option_the_docs_set_exists_and_takes_that_value():
    """Each ``ppmodels train MODEL ... --set KEY=VALUE`` of the docs and README names an option of MODEL, and the
    value is one it takes (read as the CLI reads it: JSON, else text)."""
    models = list_models()
    checked = 0
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for name, rest in re.findall(r"ppmodels train (\w+)([^\n`]*)", path.read_text()):
            if name not in models:
                continue
            options = {}
            for key, value in re.findall(r"--set '?(\w+)=([^\s']+)", rest):
                assert key in models[name].Config.__pydantic_fields__, f"{path.name}: `--set {key}=...` is no option of {name}"
                try:
                    options[key] = json.loads(value)
                except json.JSONDecodeError:
                    options[key] = value
            models[name].Config(**options)
            checked += len(options)
    assert checked >= 10


def test_the_table_writer_finds_and_rewrites_a_stale_page(tmp_path, capsys):
    from ppmodels.models.options import main

    page = (ROOT / "docs" / "models" / "vae.md").read_text()
    (tmp_path / "vae.md").write_text(page.replace("| `z_dim` | int, >= 1 | `10` |", "| `z_dim` | int, >= 1 | `12` |"))
    assert main([str(tmp_path)]) == 1 and "vae.md" in capsys.readouterr().out
    assert main([str(tmp_path), "--write"]) == 0 and (tmp_path / "vae.md").read_text() == page
