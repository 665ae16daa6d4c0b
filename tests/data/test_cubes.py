"""Image cubes: netCDF and MATLAB (v5, v7.3) loaders on synthetic scenes with Indian Pines' class structure, band
selection, background handling, the recorded transform, and the public-scene download code (offline)."""

import hashlib

import numpy as np
import pytest
import scipy.io
import xarray as xr

from benchmarks.hyperspectral import INDIAN_PINES_COUNTS, class_counts, synthetic_scene, write_mat, write_netcdf
from ppmodels.data import UNLABELED, load_dataset, open_cube, parse_spec, prepare_data
from ppmodels.data import cubes, scenes
from ppmodels.data.lazy import LazyRows
from ppmodels.data.mnist import download_checked
from ppmodels.errors import DataError, DataNotFoundError
from tests.helpers import assert_close_scaled


@pytest.fixture(scope="module")
def pines():
    """145 x 145 pixels with Indian Pines' 16 class counts and 51% background, 6 bands (the loaders' cost is in pixels)."""
    return synthetic_scene(145, 145, bands=6, seed=1)


@pytest.fixture(scope="module")
def small():
    return synthetic_scene(24, 20, bands=5, seed=2, counts=class_counts(24 * 20))


def test_the_simulated_scene_has_the_class_structure_of_indian_pines(pines):
    counts = np.bincount(pines["labels"].ravel(), minlength=17)
    assert counts[1:].tolist() == list(INDIAN_PINES_COUNTS)
    assert min(counts[1:]) == 20 and max(counts[1:]) == 2455
    assert abs(counts[0] / pines["labels"].size - 0.51) < 0.005


@pytest.mark.parametrize("bands_first", [False, True])
def test_netcdf_cube_pixels_become_points_background_unlabeled(tmp_path, pines, bands_first):
    path = write_netcdf(tmp_path / "scene.nc", pines, bands_first=bands_first)
    d = load_dataset(f"cube:{path}?var=reflectance&labels=gt")
    assert d.x.shape == (145 * 145, 6) and d.num_classes == 16 and d.likelihood == "gaussian"
    assert d.class_names == [str(k) for k in range(1, 17)]
    assert (d.y == UNLABELED).sum() == (pines["labels"] == 0).sum()
    np.testing.assert_array_equal(np.bincount(d.y[d.y >= 0]), INDIAN_PINES_COUNTS)
    # background pixels are unlabeled training points; valid and test hold labeled pixels only
    assert (d.y[d.splits["valid"]] >= 0).all() and (d.y[d.splits["test"]] >= 0).all()
    assert np.isin(np.flatnonzero(d.y == UNLABELED), d.splits["train"]).all()
    np.testing.assert_allclose(d.x.mean(0), 0, atol=1e-4)  # per-band standardisation
    np.testing.assert_allclose(d.x.std(0), 1, atol=1e-4)
    raw = pines["cube"].reshape(-1, 6)
    assert_close_scaled(d.x * np.asarray(d.metadata["cube"]["std"]) + np.asarray(d.metadata["cube"]["mean"]), raw, rel=1e-5)
    geometry = d.metadata["geometry"]
    np.testing.assert_allclose(geometry["band"], pines["wavelength"])
    assert (geometry["y_dim"], geometry["x_dim"]) == ("y", "x") and geometry["x"][1] == 20.0


def test_the_cube_and_map_are_found_without_names_and_by_suffix(tmp_path, small):
    path = write_netcdf(tmp_path / "scene.nc", small)
    a, b = load_dataset(f"cube:{path}"), load_dataset(str(path))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert parse_spec(str(tmp_path / "a.mat"))[0] == "mat"


def test_a_zarr_store_reads_as_the_netcdf_cube(tmp_path, small):
    pytest.importorskip("zarr")
    import xarray as xr

    reference = load_dataset(f"cube:{write_netcdf(tmp_path / 'scene.nc', small)}")
    with xr.open_dataset(tmp_path / "scene.nc") as ds:
        ds.transpose("wavelength", "y", "x").to_zarr(tmp_path / "scene.zarr", zarr_format=2, consolidated=True)
    d = load_dataset(f"cube:{tmp_path / 'scene.zarr'}")  # a bare .zarr path is the array source (docs/data.md)
    assert_close_scaled(d.x, reference.x, rel=1e-5)
    np.testing.assert_array_equal(d.y, reference.y)
    on_disk = load_dataset(f"cube:{tmp_path / 'scene.zarr'}?lazy=1")  # bands first in the store: read a line at a time
    assert isinstance(on_disk.x, LazyRows)
    assert_close_scaled(np.asarray(on_disk.x), reference.x, rel=1e-5)
    np.testing.assert_allclose(d.metadata["geometry"]["band"], small["wavelength"])


@pytest.mark.parametrize("bands_first", [False, True])
@pytest.mark.parametrize("pick_bands", [False, True])
def test_a_cube_left_on_disk_reads_as_the_cube_in_memory(tmp_path, pines, bands_first, pick_bands):
    """?lazy=1 keeps the pixels on disk: the same standardised values, labels, splits and band statistics as the
    cube in memory, from one pass over the file a block at a time (the dataset's checks do not read it again)."""
    path = write_netcdf(tmp_path / "scene.nc", pines, bands_first=bands_first)
    # three bands chosen out of the file's order, as a user may write them
    bands = "&bands=" + ",".join(f"{v:g}" for v in pines["wavelength"][[5, 0, 3]]) if pick_bands else ""
    memory, disk = (load_dataset(f"cube:{path}?lazy={flag}{bands}") for flag in (0, 1))
    assert isinstance(disk.x, LazyRows) and not isinstance(memory.x, LazyRows)
    one_pass = -(-disk.x.disk.shape[0] // disk.x.block_rows)
    assert disk.x.disk.reads == one_pass and disk.x.disk.max_rows_read <= disk.x.block_rows
    assert_close_scaled(np.asarray(disk.x), memory.x, rel=1e-5)
    np.testing.assert_array_equal(disk.y, memory.y)
    assert all(np.array_equal(disk.splits[k], memory.splits[k]) for k in memory.splits)
    for key in ("mean", "std", "bands"):
        assert_close_scaled(disk.metadata["cube"][key], memory.metadata["cube"][key], rel=1e-9, what=key)
    assert disk.likelihood == memory.likelihood == "gaussian"
    low, high = disk.x.stats().low, disk.x.stats().high
    assert np.isclose(low, memory.x.min(), atol=1e-5) and np.isclose(high, memory.x.max(), atol=1e-5)
    test = disk.split("test").x
    assert_close_scaled(test[: 50], memory.x[memory.splits["test"][:50]], rel=1e-5)


def test_a_large_cube_stays_on_disk_by_default_and_unstandardised_values_keep_their_range(tmp_path, small, monkeypatch):
    c = small["cube"]
    path = write_netcdf(tmp_path / "scene.nc", dict(small, cube=(c - c.min()) / (c.max() - c.min())))
    assert not isinstance(load_dataset(f"cube:{path}").x, LazyRows)
    monkeypatch.setattr(cubes, "LAZY_CUBE_BYTES", 1000)
    d = load_dataset(f"cube:{path}?standardize=none")
    assert isinstance(d.x, LazyRows) and d.likelihood == "bernoulli"  # values in [0, 1], found by the one pass
    assert not isinstance(load_dataset(f"cube:{path}?lazy=0").x, LazyRows)
    with pytest.raises(DataError, match="lazy=2 is not a choice"):
        load_dataset(f"cube:{path}?lazy=2")


@pytest.mark.numerical
def test_band_statistics_merged_over_blocks_are_those_of_all_pixels(tmp_path, pines, monkeypatch):
    """A cube in memory is summed a block of pixels at a time too (no float64 copy of it): merged over 22 blocks the
    means and standard deviations are numpy's over all pixels at once."""
    monkeypatch.setattr(cubes, "MOMENT_BYTES", 1000 * 4 * 6)  # 1000 pixels of 6 float32 bands a block
    d = load_dataset(f"cube:{write_netcdf(tmp_path / 'scene.nc', pines)}")
    raw = pines["cube"].reshape(-1, 6).astype(np.float64)
    assert_close_scaled(d.metadata["cube"]["mean"], raw.mean(0), rel=1e-10)
    assert_close_scaled(d.metadata["cube"]["std"], raw.std(0), rel=1e-10)


def test_a_cube_on_disk_with_nan_pixels_is_refused_in_one_line(tmp_path, small):
    cube = small["cube"].astype(np.float32).copy()
    cube[3, 4, 1] = np.nan
    path = write_netcdf(tmp_path / "scene.nc", dict(small, cube=cube))
    for flag in (0, 1):
        with pytest.raises(DataError, match="NaN or infinite values in 1 pixels"):
            load_dataset(f"cube:{path}?lazy={flag}")


@pytest.mark.parametrize("v73", [False, True])
def test_mat_files_v5_and_v73_read_as_the_netcdf_cube(tmp_path, pines, v73):
    reference = load_dataset(f"cube:{write_netcdf(tmp_path / 'scene.nc', pines)}")
    path = write_mat(tmp_path / "scene.mat", pines, gt_path=tmp_path / "scene_gt.mat", v73=v73)
    d = load_dataset(f"mat:{path}?x=cube&gt={tmp_path / 'scene_gt.mat'}&y=gt")
    assert_close_scaled(d.x, reference.x, rel=1e-5)
    np.testing.assert_array_equal(d.y, reference.y)
    assert d.metadata["geometry"]["shape"] == (145, 145)


def test_mat_with_map_in_the_same_file_and_bands_first(tmp_path, small):
    path = write_mat(tmp_path / "one.mat", small)
    d = load_dataset(f"mat:{path}")
    assert d.x.shape == (480, 5) and d.num_classes == 16
    flipped = dict(small, cube=np.moveaxis(small["cube"], -1, 0))
    e = load_dataset(f"mat:{write_mat(tmp_path / 'flipped.mat', flipped)}")
    assert_close_scaled(e.x, d.x, rel=1e-5)


def test_bands_are_selected_by_coordinate(tmp_path, small):
    path = write_netcdf(tmp_path / "scene.nc", small)  # wavelengths 400, 925, 1450, 1975, 2500
    d = load_dataset(f"cube:{path}?bands=900:2000")
    assert d.x.shape[1] == 3 and d.metadata["cube"]["bands"] == [925.0, 1450.0, 1975.0]
    e = load_dataset(f"cube:{path}?bands=2500,400")
    assert e.metadata["cube"]["bands"] == [2500.0, 400.0]
    with pytest.raises(DataError, match="are not wavelength coordinates"):
        load_dataset(f"cube:{path}?bands=401")
    with pytest.raises(DataError, match="selects none"):
        load_dataset(f"cube:{path}?bands=3000:4000")
    with pytest.raises(DataError, match="neither START:STOP"):
        load_dataset(f"cube:{path}?bands=red")


def test_background_is_settable_and_standardisation_optional(tmp_path, small):
    path = write_netcdf(tmp_path / "scene.nc", small)
    every = load_dataset(f"cube:{path}?background=none")
    assert every.num_classes == 17 and (every.y >= 0).all()
    other = load_dataset(f"cube:{path}?background=3")
    assert other.num_classes == 16 and (other.y == UNLABELED).sum() == (small["labels"] == 3).sum()
    raw = load_dataset(f"cube:{path}?standardize=none")
    np.testing.assert_allclose(raw.x, small["cube"].reshape(-1, 5))
    assert raw.likelihood == "gaussian"  # reflectance spans past 1 here; the range decides without standardisation
    with pytest.raises(DataError, match="standardize='z'"):
        load_dataset(f"cube:{path}?standardize=z")
    with pytest.raises(DataError, match="not a whole number"):
        load_dataset(f"cube:{path}?background=grass")


def test_a_run_record_transforms_another_scene_as_the_training_scene(tmp_path, small):
    train = load_dataset(f"cube:{write_netcdf(tmp_path / 'a.nc', small)}")
    brighter = dict(small, cube=small["cube"] * 2)
    path = write_netcdf(tmp_path / "b.nc", brighter)
    own, recorded = load_dataset(f"cube:{path}"), open_cube(f"cube:{path}", train.metadata["cube"])
    assert_close_scaled(own.x, train.x, rel=1e-5)  # its own statistics hide the brightness change
    expected = (brighter["cube"].reshape(-1, 5) - np.asarray(train.metadata["cube"]["mean"])) / np.asarray(train.metadata["cube"]["std"])
    assert_close_scaled(recorded.x, expected, rel=1e-5)
    assert recorded.metadata["cube"]["classes"] == train.metadata["cube"]["classes"]
    with pytest.raises(DataError, match="trained on 5"):
        open_cube(f"cube:{path}?bands=400:1000", train.metadata["cube"])
    with pytest.raises(DataError, match="not an image cube"):
        open_cube("digits")


def test_labels_are_drawn_from_the_labeled_pixels_only(tmp_path, pines):
    d = load_dataset(f"cube:{write_netcdf(tmp_path / 'scene.nc', pines)}")
    train = prepare_data(d, num_labels=160).labeled  # the budget drawn (training labels and those held out for selection)
    assert train.num_labeled == 160
    assert np.bincount(train.y[train.labeled].numpy()).tolist() == [10] * 16


def test_unreadable_or_ambiguous_cubes_give_one_line(tmp_path, small):
    (tmp_path / "bad.nc").write_bytes(b"not netcdf at all")
    with pytest.raises(DataError, match="not a readable netCDF file"):
        load_dataset(f"cube:{tmp_path / 'bad.nc'}")
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" + b"\0" * 200)
    with pytest.raises(DataError, match="not a readable MATLAB file"):
        load_dataset(f"mat:{tmp_path / 'bad.mat'}")
    (tmp_path / "cut.mat").write_bytes(write_mat(tmp_path / "whole.mat", small, v73=True).read_bytes()[:2000])
    with pytest.raises(DataError, match="cut.mat is not a readable MATLAB file"):
        load_dataset(f"mat:{tmp_path / 'cut.mat'}")
    path = write_netcdf(tmp_path / "scene.nc", small)
    with pytest.raises(DataError, match="^.*scene.nc has no variable 'radiance' .*; fix [?]var=NAME$"):
        load_dataset(f"cube:{path}?var=radiance")
    with pytest.raises(DataError, match="^.*scene.nc has no variable 'truth'"):
        load_dataset(f"cube:{path}?labels=truth")
    write_mat(tmp_path / "cube.mat", small)
    scipy.io.savemat(tmp_path / "gt.mat", {"gt": small["labels"][:10]})
    with pytest.raises(DataError, match="has shape"):
        load_dataset(f"mat:{tmp_path / 'cube.mat'}?gt={tmp_path / 'gt.mat'}")
    scipy.io.savemat(tmp_path / "twocubes.mat", {"a": small["cube"], "b": small["cube"]})
    with pytest.raises(DataError, match="2 candidate cube"):
        load_dataset(f"mat:{tmp_path / 'twocubes.mat'}")


# ----- the public scenes: found on disk, downloaded with checks ------------------------------------------------
def test_a_public_scene_is_found_in_the_data_dir(tmp_path, small):
    folder = tmp_path / "hyperspectral"
    folder.mkdir()
    write_mat(folder / "Indian_pines_corrected.mat", small, gt_path=folder / "Indian_pines_gt.mat")
    d = load_dataset("indian_pines?bands=0:2", data_dir=str(tmp_path))  # .mat bands: numbered 0..B-1
    assert d.name == "indian_pines" and d.x.shape == (480, 3) and d.num_classes == 16


def test_a_missing_scene_says_where_it_looked_and_unchecked_files_are_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PPMODELS_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="Indian_pines_corrected.mat not found in .*add --download"):
        load_dataset("indian_pines", data_dir=str(tmp_path))
    with pytest.raises(DataNotFoundError, match="no recorded checksum"):
        scenes.find_or_download("Salinas_gt.mat", tmp_path, download=True)
    assert {f for f, (_, sha, size) in scenes.FILES.items() if sha} == {
        "Indian_pines_corrected.mat", "Indian_pines_gt.mat", "Salinas_corrected.mat", "SalinasA_corrected.mat", "PaviaU.mat", "KSC.mat"}


def test_downloads_are_checked_for_size_and_checksum(tmp_path):
    source = tmp_path / "remote.mat"
    source.write_bytes(b"payload" * 10)
    good = hashlib.sha256(source.read_bytes()).hexdigest()
    url = source.as_uri()
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        download_checked([url], "0" * 64, tmp_path / "a.mat")
    with pytest.raises(DataNotFoundError, match="70 bytes, expected 71"):
        download_checked([url], good, tmp_path / "a.mat", size=71)
    assert not (tmp_path / "a.mat").exists()
    download_checked(["file:///nonexistent/x.mat", url], good, tmp_path / "a.mat", size=70)
    assert (tmp_path / "a.mat").read_bytes() == source.read_bytes()


# ----- the spectral front ends: brightness normalisation and patch averaging -----------------------------------
def brute_patch_mean(cube: np.ndarray, patch: int) -> np.ndarray:
    """Each pixel's mean spectrum over the ``patch x patch`` window, edges mirrored about the edge pixel, by loops."""
    h, w, _ = cube.shape
    r = patch // 2

    def mirror(i, n):
        return -i if i < 0 else 2 * (n - 1) - i if i >= n else i

    out = np.zeros_like(cube, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            out[i, j] = np.mean([cube[mirror(i + a, h), mirror(j + b, w)] for a in range(-r, r + 1) for b in range(-r, r + 1)], axis=0)
    return out


def test_brightness_normalisation_and_patch_averaging_match_their_definitions(tmp_path, small):
    path = write_netcdf(tmp_path / "scene.nc", small)
    raw = small["cube"].astype(np.float64)
    bright = raw / raw.mean(-1, keepdims=True)
    for options, expected in [("normalize=brightness", bright), ("patch=3", brute_patch_mean(raw, 3)),
                              ("normalize=brightness&patch=5", brute_patch_mean(bright, 5))]:
        d = load_dataset(f"cube:{path}?standardize=none&{options}")
        assert_close_scaled(d.x, expected.reshape(-1, 5), rel=1e-5)
        standardized = load_dataset(f"cube:{path}?{options}")
        assert_close_scaled(standardized.x, (d.x - d.x.mean(0)) / d.x.std(0), rel=1e-4)
    # a brighter copy of the scene reads the same once brightness is normalised
    brighter = write_netcdf(tmp_path / "bright.nc", dict(small, cube=small["cube"] * np.linspace(0.5, 2, small["cube"][..., :1].size).reshape(24, 20, 1)))
    assert_close_scaled(load_dataset(f"cube:{brighter}?normalize=brightness").x, load_dataset(f"cube:{path}?normalize=brightness").x, rel=1e-4)


def test_a_run_record_keeps_its_front_end_and_older_runs_read_raw_pixels(tmp_path, small):
    path = write_netcdf(tmp_path / "scene.nc", small)
    trained = load_dataset(f"cube:{path}?normalize=brightness&patch=3")
    record = trained.metadata["cube"]
    assert (record["normalize"], record["patch"]) == ("brightness", 3)
    assert_close_scaled(open_cube(f"cube:{path}", record).x, trained.x, rel=1e-5)  # predict's spec need not repeat them
    older = {k: v for k, v in load_dataset(f"cube:{path}").metadata["cube"].items() if k not in ("normalize", "patch")}
    assert_close_scaled(open_cube(f"cube:{path}?patch=3", older).x, load_dataset(f"cube:{path}").x, rel=1e-5)


def test_principal_components_are_scikit_learns_and_a_run_projects_a_new_scene_on_its_own_axes(tmp_path, pines):
    from sklearn.decomposition import PCA

    path = write_netcdf(tmp_path / "scene.nc", pines)
    full = load_dataset(f"cube:{path}?normalize=brightness&patch=3")
    reduced = load_dataset(f"cube:{path}?normalize=brightness&patch=3&components=4")
    pca = PCA(4).fit(np.asarray(full.x, dtype=np.float64))
    expected = pca.transform(np.asarray(full.x, dtype=np.float64))
    signs = np.sign((reduced.x * expected).sum(0))  # an axis is defined up to its sign
    assert reduced.x.shape == (145 * 145, 4) and (np.abs(signs) == 1).all()
    assert_close_scaled(reduced.x * signs, expected, rel=1e-4)
    record = reduced.metadata["cube"]
    assert record["components"] == 4 and record["explained"] == pytest.approx(pca.explained_variance_ratio_.sum(), rel=1e-6)
    axes = np.asarray(record["axes"])
    np.testing.assert_allclose(axes @ axes.T, np.eye(4), atol=1e-9)
    # another scene is read through the training scene's standardisation and axes, not its own
    other = write_netcdf(tmp_path / "other.nc", synthetic_scene(145, 145, bands=6, seed=5))
    again = open_cube(f"cube:{other}", record)
    fresh = load_dataset(f"cube:{other}?normalize=brightness&patch=3")  # its own statistics
    own = (fresh.x * np.asarray(fresh.metadata["cube"]["std"]) + np.asarray(fresh.metadata["cube"]["mean"]) - np.asarray(record["mean"])) / np.asarray(record["std"])
    assert_close_scaled(again.x, (own - np.asarray(record["center"])) @ axes.T, rel=1e-4)
    older = {k: v for k, v in full.metadata["cube"].items() if k != "components"}  # a run saved before the option
    assert open_cube(f"cube:{path}?components=2", older).x.shape == (145 * 145, 6)


@pytest.mark.parametrize("options, message", [
    ("components=7", "components=7 must be between 1 and the cube's 5 bands"), ("components=most", "not a whole number"),
    ("lazy=1&components=3", "components= needs the cube of .* in memory"),
    ("patch=4", "patch=4 must be an odd number"), ("patch=0", "must be an odd number"), ("patch=five", "not a whole number"),
    ("patch=99", "larger than the cube"), ("normalize=l2", "normalize='l2' is unknown"),
    ("pacth=5", "unknown option [?]pacth for cube:PATH [(]did you mean patch[?][)]"), ("lazy=1&patch=3", "need the cube of .* in memory; add [?]lazy=0")])
def test_bad_front_end_options_give_one_line(tmp_path, small, options, message):
    path = write_netcdf(tmp_path / "scene.nc", small)
    with pytest.raises(DataError, match=message):
        load_dataset(f"cube:{path}?{options}")


def test_brightness_normalisation_refuses_dark_pixels(tmp_path, small):
    dark = small["cube"].copy()
    dark[3, 4] = -dark[3, 4]
    path = write_netcdf(tmp_path / "scene.nc", dict(small, cube=dark))
    with pytest.raises(DataError, match="1 pixels of 'scene' have a mean of 0 or less"):
        load_dataset(f"cube:{path}?normalize=brightness")


def test_negative_ground_truth_values_are_refused_unless_they_are_the_background(tmp_path, small):
    labels = small["labels"].copy()
    labels[0, 0] = -3
    path = write_netcdf(tmp_path / "scene.nc", small)
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    ds["gt"] = (("y", "x"), labels.astype(np.int16))
    ds.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(DataError, match=r"negative values \(-3\).*pass \?background=VALUE if -3 marks unlabeled pixels"):
        load_dataset(f"cube:{path}")
    d = load_dataset(f"cube:{path}?background=-3")
    assert d.y[0] == UNLABELED and d.num_classes == len(np.unique(small["labels"]))  # 0 is a class now
