"""``ppmodels predict`` and ``encode`` on image cubes: maps over the cube's coordinates, the run's recorded transform."""

import json

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from benchmarks.hyperspectral import class_counts, synthetic_scene, write_mat, write_netcdf
from ppmodels.commands.encode import encode
from ppmodels.commands.predict import predict
from ppmodels.commands.train import train
from ppmodels.errors import ConfigError, DataError
from ppmodels.infer import TrainConfig
from ppmodels.runs import run_config
from ppmodels_cli.main import app
from tests.helpers import assert_close_scaled

FAST = TrainConfig(epochs=1, batch_size=100, patience=None)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    data = synthetic_scene(20, 16, bands=6, seed=3, counts=class_counts(20 * 16, minimum=4))
    return {"nc": write_netcdf(folder / "scene.nc", data), "mat": write_mat(folder / "scene.mat", data), "data": data, "folder": folder}


@pytest.fixture(scope="module")
def m2_run(scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "m2"
    train("m2", f"cube:{scene['nc']}", out, train_config=FAST, model_options={"z_dim": 3, "hidden": [16]}, progress=False)
    return out


def test_the_run_records_the_cube_transform(m2_run, scene):
    record = run_config(m2_run)["data"]["cube"]
    raw = scene["data"]["cube"].reshape(-1, 6)
    assert_close_scaled(record["mean"], raw.mean(0), rel=1e-6)
    assert record["classes"] == list(range(1, 17)) and record["background"] == 0 and record["standardize"] == "band"


def test_a_run_records_its_process_count_and_device(m2_run):
    """One process on the CPU (tests/train/test_distributed.py checks 2 processes over gloo)."""
    summary = json.loads((m2_run / "summary.json").read_text())
    for record in (run_config(m2_run), summary):
        assert (record["processes"], record["device"], "backend" in record) == (1, "cpu", False)


def test_predict_writes_the_map_probabilities_and_z_over_the_cube_coordinates(m2_run, scene, tmp_path):
    written = predict(m2_run, f"cube:{scene['nc']}", tmp_path / "map.nc")
    assert written["png"].stat().st_size > 1000
    with xr.open_dataset(written["map"]) as ds:
        assert ds["class_map"].dims == ("y", "x") and ds["class_map"].shape == (20, 16)
        np.testing.assert_allclose(ds["x"].values, np.arange(16) * 20.0)  # the cube's own coordinates
        assert set(np.unique(ds["class_map"].values)) <= set(range(1, 17))  # ground-truth codes, not class numbers
        np.testing.assert_allclose(ds["probability"].sum("class").values, 1, atol=1e-5)
        assert ds["probability"].dims == ("y", "x", "class") and ds["class"].values.tolist() == list(range(1, 17))
        assert ds["z"].shape == (20, 16, 3)
        np.testing.assert_array_equal(ds["labels"].values, scene["data"]["labels"])
        codes = ds["probability"].values.argmax(-1) + 1
        np.testing.assert_array_equal(ds["class_map"].values, codes)


def test_encode_of_an_m2_run_maps_the_z_and_class_predict_writes(m2_run, scene, tmp_path):
    """M2's z is inferred given a class: encode writes q(z | x, y_pred) at y_pred = argmax q(y|x), the z and the
    class of predict's map (as ground-truth values, like the cube's labels)."""
    codes = encode(m2_run, f"cube:{scene['nc']}", tmp_path / "z.nc")
    mapped = predict(m2_run, f"cube:{scene['nc']}", tmp_path / "map.nc", png=False)["map"]
    with xr.open_dataset(codes) as z, xr.open_dataset(mapped) as ds:
        assert z["z_loc"].dims == ("y", "x", "latent") and z["z_scale"].shape == (20, 16, 3) and (z["z_scale"] > 0).all()
        np.testing.assert_array_equal(z["y_pred"].values, ds["class_map"].values)
        assert_close_scaled(z["z_loc"].values, ds["z"].values, rel=1e-6)


def test_predict_on_the_same_scene_as_mat_gives_the_same_map(m2_run, scene, tmp_path):
    a = predict(m2_run, f"cube:{scene['nc']}", tmp_path / "a.nc", png=False)["map"]
    b = predict(m2_run, f"mat:{scene['mat']}", tmp_path / "b.nc", png=False)["map"]
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db:
        assert_close_scaled(da["probability"].values, db["probability"].values, rel=1e-5)


def test_a_scene_left_on_disk_trains_and_maps_as_the_scene_in_memory(m2_run, scene, tmp_path):
    """?lazy=1: a run trains on the pixels read from disk a block at a time, and predict maps such a scene with the
    probabilities it gives for the scene in memory."""
    lazy = f"cube:{scene['nc']}?lazy=1"
    a = predict(m2_run, f"cube:{scene['nc']}", tmp_path / "a.nc", png=False)["map"]
    b = predict(m2_run, lazy, tmp_path / "b.nc", png=False)["map"]
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db:
        assert_close_scaled(da["probability"].values, db["probability"].values, rel=1e-5)
        np.testing.assert_array_equal(da["class_map"].values, db["class_map"].values)
    out = tmp_path / "m2_disk"
    train("m2", lazy, out, train_config=FAST, model_options={"z_dim": 3, "hidden": [16]}, progress=False)
    assert_close_scaled(run_config(out)["data"]["cube"]["mean"], run_config(m2_run)["data"]["cube"]["mean"], rel=1e-9)
    with xr.open_dataset(predict(out, lazy, tmp_path / "c.nc", png=False)["map"]) as dc:
        assert dc["class_map"].shape == (20, 16)


def test_predict_applies_the_training_transform_to_another_scene(m2_run, scene, tmp_path):
    """A darker scene is standardised with the training scene's statistics, so its map changes; with its own
    statistics it would look exactly like the training scene."""
    darker = dict(scene["data"], cube=scene["data"]["cube"] * 0.5)
    other = write_netcdf(tmp_path / "darker.nc", darker)
    with xr.open_dataset(predict(m2_run, f"cube:{scene['nc']}", tmp_path / "a.nc", png=False)["map"]) as a, \
         xr.open_dataset(predict(m2_run, f"cube:{other}", tmp_path / "b.nc", png=False)["map"]) as b:
        assert not np.allclose(a["probability"].values, b["probability"].values, atol=1e-3)


def test_predict_refuses_what_it_cannot_map(m2_run, scene, tmp_path):
    with pytest.raises(ConfigError, match="must end in .nc"):
        predict(m2_run, f"cube:{scene['nc']}", tmp_path / "map.npz")
    with pytest.raises(DataError, match="not an image cube"):
        predict(m2_run, "digits", tmp_path / "map.nc")
    vae = tmp_path / "vae"
    train("vae", f"cube:{scene['nc']}", vae, train_config=FAST, model_options={"z_dim": 2, "hidden": [8]}, progress=False)
    with pytest.raises(ConfigError, match="does not classify"):
        predict(vae, f"cube:{scene['nc']}", tmp_path / "map.nc")
    # encode keeps the coordinates in netCDF
    path = encode(vae, f"cube:{scene['nc']}", tmp_path / "z.nc")
    with xr.open_dataset(path) as ds:
        assert ds["z_loc"].dims == ("y", "x", "latent") and ds["z_loc"].shape == (20, 16, 2)
        np.testing.assert_allclose(ds["y"].values, np.arange(20) * 20.0)
    with pytest.raises(ConfigError, match="covers every pixel"):
        encode(vae, f"cube:{scene['nc']}", tmp_path / "z.nc", split="test")


def test_the_cli_predict_command(m2_run, scene, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(m2_run), "--data", f"cube:{scene['nc']}", "--out", str(tmp_path / "map.nc")])
    assert result.exit_code == 0, result.output
    assert "map.nc" in result.output and "map.png" in result.output
    result = CliRunner().invoke(app, ["predict", str(m2_run), "--data", "digits", "--out", str(tmp_path / "map.nc")])
    assert result.exit_code == 2 and "error: 'digits' is not an image cube" in result.output


def test_predict_maps_the_runs_own_scene_without_data(m2_run, scene, tmp_path):
    """`ppmodels predict RUN --out OUT` maps the scene the run trained on, as --data naming it does."""
    result = CliRunner().invoke(app, ["predict", str(m2_run), "--out", str(tmp_path / "own.nc"), "--no-png"])
    assert result.exit_code == 0, result.output
    named = predict(m2_run, f"cube:{scene['nc']}", tmp_path / "named.nc", png=False)["map"]
    with xr.open_dataset(tmp_path / "own.nc") as own, xr.open_dataset(named) as other:
        np.testing.assert_array_equal(own["probability"].values, other["probability"].values)


def test_map_keeps_the_cube_coordinate_attributes_and_class_names(scene, tmp_path):
    """A cube whose y/x/wavelength carry units and long names and whose ground truth names its classes (CF
    flag_values/flag_meanings): map.nc keeps the attributes, the wavelengths the model read, and names the classes
    (class_name, and flag attributes on class_map and labels); the run records the names for other scenes."""
    ds = xr.open_dataset(scene["nc"]).load()
    units = {"y": ("m", "northing"), "x": ("m", "easting"), "wavelength": ("nm", "band centre wavelength")}
    for dim, (unit, long_name) in units.items():
        ds[dim].attrs.update(units=unit, long_name=long_name)
    names = [f"crop {c}" for c in range(1, 17)]
    ds["gt"].attrs.update(flag_values=np.arange(0, 17, dtype=np.uint8), flag_meanings=" ".join(["background", *[n.replace(" ", "_") for n in names]]))
    ds.to_netcdf(tmp_path / "named.nc", engine="h5netcdf")
    run = tmp_path / "m2"
    train("m2", f"cube:{tmp_path / 'named.nc'}", run, train_config=FAST, model_options={"z_dim": 2, "hidden": [8]}, progress=False)
    assert run_config(run)["data"]["cube"]["class_names"] == [n.replace(" ", "_") for n in names]
    maps = {"named": predict(run, None, tmp_path / "map.nc", png=False)["map"],
            "plain": predict(run, f"cube:{scene['nc']}", tmp_path / "plain.nc", png=False)["map"]}  # a scene without attributes
    with xr.open_dataset(maps["named"]) as out, xr.open_dataset(maps["plain"]) as plain:
        for dim, (unit, long_name) in units.items():
            assert (out[dim].attrs["units"], out[dim].attrs["long_name"]) == (unit, long_name)
        np.testing.assert_allclose(out["wavelength"].values, ds["wavelength"].values)
        for result in (out, plain):
            assert result["class_name"].values.tolist() == [n.replace(" ", "_") for n in names]
            assert result["class_map"].attrs["flag_values"].tolist() == list(range(1, 17))
            assert result["class_map"].attrs["flag_meanings"].split() == [n.replace(" ", "_") for n in names]
        assert out["labels"].attrs["flag_meanings"] == out["class_map"].attrs["flag_meanings"]


def test_predict_overwrite_replaces_the_named_output_and_not_a_png_beside_it(m2_run, tmp_path):
    """--overwrite replaces --out map.nc, not a map.png beside it that the command line never named (and the refusal
    does not send the user back to --overwrite); --no-png leaves the picture out."""
    picture, out = tmp_path / "map.png", tmp_path / "map.nc"
    picture.write_bytes(b"someone's picture")
    out.write_bytes(b"an old map")
    result = CliRunner().invoke(app, ["predict", str(m2_run), "--out", str(out), "--overwrite"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{picture} already exists and was not written by ppmodels" in result.output and "pass --no-png" in result.output
    assert "pass --overwrite" not in result.output
    assert picture.read_bytes() == b"someone's picture" and out.read_bytes() == b"an old map"  # refused before any work
    result = CliRunner().invoke(app, ["predict", str(m2_run), "--out", str(out), "--overwrite", "--no-png"])
    assert result.exit_code == 0, result.output
    assert picture.read_bytes() == b"someone's picture" and out.read_bytes() != b"an old map"


def test_diagnose_on_the_training_pixels_scores_only_the_labeled_ones(m2_run):
    """The training split of a cube holds unlabeled background pixels (-1): calibration uses the labeled ones."""
    import ppmodels

    result = ppmodels.diagnose(m2_run, split="train", num_data=60, particles=21, report=True, out=m2_run / "diag")
    labels = result["idata"].observed_data["y"].values
    assert (labels < 0).any() and (labels >= 0).any()
    assert sum(b["count"] for b in result["calibration"]["bins"]) == (labels >= 0).sum()
    assert (m2_run / "diag" / "report.html").is_file()


def test_evaluate_standardises_another_scene_as_the_run(m2_run, scene, tmp_path):
    from ppmodels.commands.evaluate import evaluate

    own = evaluate(m2_run, split="test", iw_samples=0, out=tmp_path / "own.json")
    assert own["baselines"]  # SVC and label spreading on the run's labels, scored on the same labeled pixels
    darker = write_netcdf(tmp_path / "darker.nc", dict(scene["data"], cube=scene["data"]["cube"] * 0.5))
    other = evaluate(m2_run, f"cube:{darker}", split="test", iw_samples=0, out=tmp_path / "other.json")
    # with its own statistics the darker scene would standardise to the very same pixels, and the same ELBO
    assert abs(other["elbo"] - own["elbo"]) > 0.1


def test_data_opened_for_a_run_gets_the_run_transform(m2_run, scene, tmp_path):
    from ppmodels.runs import open_for_run

    darker = write_netcdf(tmp_path / "darker.nc", dict(scene["data"], cube=scene["data"]["cube"] * 0.5))
    record = run_config(m2_run)["data"]["cube"]
    expected = (scene["data"]["cube"].reshape(-1, 6) * 0.5 - np.asarray(record["mean"])) / np.asarray(record["std"])
    assert_close_scaled(open_for_run(m2_run, f"cube:{darker}").x, expected, rel=1e-5)
    np.testing.assert_allclose(open_for_run({}, f"cube:{darker}").x.std(0), 1, atol=1e-4)  # no record: its own statistics
    with pytest.raises(DataError, match="not an image cube"):
        open_for_run(m2_run, "digits")  # a cube run applied to other data: refused, the transform would not fit


def test_posterior_draws_of_another_scene_use_the_run_transform(m2_run, scene, tmp_path):
    """``sample --posterior`` on a cube standardises it as the run's training scene was: a scene at half the
    brightness gives other inputs (with its own statistics it would standardise to the very same pixels)."""
    import arviz as az

    from ppmodels.commands.sample import sample_posterior

    darker = write_netcdf(tmp_path / "darker.nc", dict(scene["data"], cube=scene["data"]["cube"] * 0.5))
    own = az.from_netcdf(sample_posterior(m2_run, f"cube:{scene['nc']}", tmp_path / "own.nc", num_data=5, draws=3))
    other = az.from_netcdf(sample_posterior(m2_run, f"cube:{darker}", tmp_path / "other.nc", num_data=5, draws=3))
    assert not np.allclose(own.observed_data["x"].values, other.observed_data["x"].values)
