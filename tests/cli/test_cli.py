import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ppmodels import load, load_dataset
from ppmodels_cli.main import app
from tests.helpers import assert_close_scaled

runner = CliRunner()
FAST = ["--epochs", "2", "--batch-size", "256", "--hidden", "16", "--z-dim", "3", "--quiet"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_no_args_shows_help():
    result = invoke()
    assert "train" in result.output and "encode" in result.output


def test_models_lists_registered_models():
    result = invoke("models")
    assert result.exit_code == 0
    assert "vae" in result.output and "m1" in result.output


def test_models_vae_lists_every_option_with_its_default_and_meaning():
    import dataclasses

    from ppmodels.models import VAEConfig

    result = invoke("models", "vae")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "options (ppmodels train vae --set KEY=VALUE):"
    heads = [line.strip() for line in lines if line.startswith("  ") and not line.startswith("      ")]
    assert [h.split(" = ")[0] for h in heads] == [f.name for f in dataclasses.fields(VAEConfig)]
    assert "  z_dim = 10  [int, >= 1]  (also --z-dim)" in lines and "  activation = relu  [softplus | relu | tanh | elu | leaky_relu | linear]" in lines
    assert "  hidden = [256, 256]  [list[int]]  (also --hidden)" in lines and "  noise_level = 0.0  [float, >= 0]  (also --noise-level)" in lines
    assert lines[lines.index("  z_dim = 10  [int, >= 1]  (also --z-dim)") + 1] == "      latent size."
    assert "(undocumented)" not in result.output


@pytest.mark.parametrize("name", ["adgm", "gan", "gmm", "gmvae", "m1", "m1m2", "m2", "ppca", "vae"])
def test_every_option_of_every_model_has_a_meaning(name):
    from ppmodels.models import get_model_class
    from ppmodels.models.options import model_options

    undocumented = [o.name for o in model_options(get_model_class(name)) if not o.help]
    assert not undocumented, f"describe these options of {name} in their Field(description=...): {undocumented}"


def test_models_of_an_unknown_name_is_one_line():
    result = invoke("models", "transformer")
    assert result.exit_code == 2 and result.stderr.strip().startswith("error: unknown model 'transformer'; known models: adgm, gan, gmm")


def test_train_help_of_a_training_option_is_its_field_description():
    import typer

    from ppmodels import TrainConfig

    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    for name, field in TrainConfig.__pydantic_fields__.items():
        described = " ".join(field.description.replace("``", "`").split())
        assert params[name].help.startswith(described[0].upper() + described[1:]), name
    assert params["lr_factor"].help.endswith(" Must be greater than 0 and less than 1.")
    assert invoke("train", "--help").exit_code == 0


def test_train_encode_sample_end_to_end(tmp_path):
    run = tmp_path / "vae"
    result = invoke("train", "vae", "--data", "digits", "--out", run, *FAST, "--sample-every", "1")
    assert result.exit_code == 0, result.output
    for name in ("config.json", "metrics.jsonl", "model.safetensors", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt", "samples/epoch_0002.png"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "vae" and config["model_config"]["z_dim"] == 3 and config["data"]["spec"] == "digits"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and np.isfinite(summary["test_elbo"]) and "torch" in summary["versions"]

    result = invoke("encode", run, "--data", "digits", "--out", tmp_path / "z.npz")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "z.npz") as z:
        assert z["z_loc"].shape == (1797, 3) and z["z_scale"].shape == (1797, 3) and z["y"].shape == (1797,)

    for name in ("s.png", "s.npy"):
        result = invoke("sample", run, "--num", 16, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "s.npy").shape == (16, 1, 8, 8)
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_encode_of_an_m2_run_writes_q_z_given_x_and_the_predicted_class(tmp_path):
    """M2 has no q(z|x) but q(z|x,y): encode gives it at y_pred = argmax q(y|x), written beside the codes."""
    result = invoke("train", "m2", "--data", "digits", "--labels", 50, "--out", tmp_path / "m2", *FAST)
    assert result.exit_code == 0, result.output
    result = invoke("encode", tmp_path / "m2", "--data", "digits", "--split", "test", "--out", tmp_path / "z.npz")
    assert result.exit_code == 0, result.output
    model, test = load(tmp_path / "m2"), load_dataset("digits").split("test")
    with np.load(tmp_path / "z.npz") as z:
        assert sorted(z.files) == ["y", "y_pred", "z_loc", "z_scale"] and z["z_scale"].shape == (len(test.x), 3)
        np.testing.assert_array_equal(z["y_pred"], model.predict(test.x))
        np.testing.assert_array_equal(z["y"], test.y.numpy())
        assert_close_scaled(z["z_loc"], model.style_means(test.x), rel=1e-6)
    # a density fitted to codes needs one code per datum whatever its class: latents:RUN still says what M2 lacks
    result = invoke("train", "gmm", "--data", f"latents:{tmp_path / 'm2'}", "--out", tmp_path / "gmm", "--epochs", "1", "--quiet")
    assert result.exit_code == 2 and "which has no q(z|x) (its z is inferred given a class, q(z|x,y))" in result.stderr


def test_train_m1_prints_accuracy(tmp_path):
    result = invoke("train", "m1", "--data", "digits", "--labels", 50, "--out", tmp_path / "m1", *FAST)
    assert result.exit_code == 0, result.output
    # the reported accuracy is the saved model's on the test split, as printed
    accuracy = json.loads((tmp_path / "m1" / "summary.json").read_text())["test_accuracy"]
    test = load_dataset("digits").split("test")
    assert accuracy == pytest.approx((load(tmp_path / "m1").predict(test.x) == test.y.numpy()).mean())
    assert f"test_accuracy: {accuracy:.4f}" in result.output


def test_model_options_via_set(tmp_path):
    result = invoke("train", "m1", "--labels", 20, "--out", tmp_path / "m1", *FAST, "--set", "classifier=logistic")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m1" / "config.json").read_text())["model_config"]["classifier"] == "logistic"


def test_lr_patience_is_saved_and_each_epoch_records_its_rate(tmp_path):
    run = tmp_path / "vae"
    assert invoke("train", "vae", "--out", run, *FAST, "--lr-patience", 3, "--lr-factor", 0.25).exit_code == 0
    assert {k: json.loads((run / "config.json").read_text())["train"][k] for k in ("lr_patience", "lr_factor")} == {"lr_patience": 3, "lr_factor": 0.25}
    assert [json.loads(l)["lr"] for l in (run / "metrics.jsonl").read_text().splitlines()] == [0.001, 0.001]


def test_bf16_precision_is_saved_and_trains(tmp_path):
    run = tmp_path / "m2"
    result = invoke("train", "m2", "--labels", 50, "--out", run, *FAST, "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == "bf16"
    assert "test_accuracy" in result.output


def test_resume_continues_a_run(tmp_path):
    run = tmp_path / "vae"
    assert invoke("train", "vae", "--out", run, *FAST).exit_code == 0
    config = json.loads((run / "config.json").read_text())
    config["train"]["epochs"] = 3  # a longer run, as if the first had been cut short
    (run / "config.json").write_text(json.dumps(config))
    result = invoke("train", "vae", "--out", run, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert [json.loads(l)["epoch"] for l in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize("args, message", [
    (["train", "nosuchmodel"], "unknown model"),
    (["train", "vae", "--data", "imagenet"], "unknown data spec"),
    (["train", "vae", "--data", "npz:/no/such.npz"], "does not exist"),
    (["train", "m1", "--labels", "100000"], "more than"),
    (["train", "m1", "--labels", "3"], "fewer than one per class"),
    (["train", "vae", "--set", "classifier=svm"], "do not apply to model 'vae'"),
    (["train", "vae", "--likelihood", "poisson"], "unknown likelihood"),
    (["train", "vae", "--resume"], "cannot resume"),
    (["train", "vae", "--lr-factor", "1.5"], "option lr_factor must be greater than 0 and less than 1, got 1.5; fix --lr-factor"),
    (["train", "vae", "--precision", "fp16"], "precision must be one of fp32, bf16, got 'fp16'"),
    (["train", "m1"], None),  # all labels visible: trains fine
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, args + ["--out", str(tmp_path / "run"), *FAST])
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_bad_option_values_are_usage_errors(tmp_path):
    assert invoke("train", "vae", "--epochs", 0).exit_code == 2
    assert invoke("train", "vae", "--hidden", "a,b").exit_code == 2


def test_existing_out_is_refused_then_overwritten(tmp_path):
    run = tmp_path / "vae"
    assert invoke("train", "vae", "--out", run, *FAST).exit_code == 0
    result = invoke("train", "vae", "--out", run, *FAST)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert invoke("train", "vae", "--out", run, *FAST, "--overwrite").exit_code == 0


def test_sample_png_needs_image_data(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3))
    np.savez(tmp_path / "t.npz", x=x)
    assert invoke("train", "vae", "--data", f"npz:{tmp_path}/t.npz", "--out", tmp_path / "run", *FAST).exit_code == 0
    result = invoke("sample", tmp_path / "run", "--out", tmp_path / "s.png")
    assert result.exit_code == 2 and "PNG needs image data" in result.stderr


def test_mnist_one_epoch(tmp_path, mnist_dir):
    result = invoke("train", "vae", "--data", "mnist", "--data-dir", mnist_dir, "--epochs", 1, "--batch-size", 500, "--hidden", "64",
                    "--z-dim", 4, "--quiet", "--out", tmp_path / "mnist", "--max-per-class", 300)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "mnist" / "summary.json").read_text())["epochs"] == 1
