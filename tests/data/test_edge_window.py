import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from benchmarks.hyperspectral import synthetic_scene, write_netcdf
from ppmodels.data import load_dataset, open_cube
from ppmodels.data.cubes import edge_preserving_mean
from ppmodels.errors import DataError
from tests.helpers import assert_close_scaled


def two_fields(noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    field = np.zeros((12, 12), dtype=int)
    field[:, 6:] = 1
    spectra = np.array([[1.0, 0.5, 0.2], [0.2, 0.6, 1.0]])
    return spectra[field] + rng.normal(0, noise, (12, 12, 3)), field


def test_one_pixel_is_the_weighted_mean_of_its_window():
    x, _ = two_fields()
    out, s2 = edge_preserving_mean(x, 2)
    direct = np.concatenate([((np.roll(x, (dy, dx), axis=(0, 1)) - x) ** 2).mean(2)[2:-2, 2:-2].ravel()
                             for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))])
    i, j = 5, 6  # next to the edge, window inside the image
    window = x[i - 2:i + 3, j - 2:j + 3].reshape(-1, 3)
    weights = np.exp(-((window - x[i, j]) ** 2).mean(1) / (2 * s2))
    np.testing.assert_allclose(out[i, j], weights @ window / weights.sum(), rtol=1e-10)
    assert np.isclose(s2, np.median(direct), rtol=0.2)  # the interior's direct-neighbour differences set the scale


def test_the_window_does_not_average_across_a_field_edge():
    x, field = two_fields()
    plain = uniform_filter(x, size=(5, 5, 1), mode="mirror")
    kept, _ = edge_preserving_mean(x, 2)
    truth = np.array([[1.0, 0.5, 0.2], [0.2, 0.6, 1.0]])[field]
    edge = (slice(None), slice(4, 8))  # the two columns on each side of the edge
    assert np.abs(plain[edge] - truth[edge]).max() > 0.2  # the plain mean mixes the fields
    assert np.abs(kept[edge] - truth[edge]).max() < 0.05  # the weighted one keeps each pixel's field
    assert np.abs(kept - truth).std() < np.abs(x - truth).std()  # and still averages the noise away


def test_a_flat_scene_stays_flat():
    x = np.ones((6, 7, 4)) * np.array([0.3, 0.4, 0.5, 0.6])
    out, _ = edge_preserving_mean(x, 2)
    np.testing.assert_allclose(out, x, rtol=1e-12)


def test_the_result_does_not_depend_on_the_block_size_and_keeps_a_float32_cube_float32():
    x, _ = two_fields()
    x = np.concatenate([x, x[::-1]], axis=0)  # 24 rows: blocks of 1 and 5 rows, and one block
    whole, scale = edge_preserving_mean(x, 2, block_bytes=1 << 30)
    for rows in (1, 5):
        part, again = edge_preserving_mean(x, 2, block_bytes=rows * 8 * (x.shape[1] + 4) * x.shape[2])
        assert again == scale and np.array_equal(part, whole), rows
    single, _ = edge_preserving_mean(x.astype(np.float32), 2, block_bytes=5 * 8 * 16 * 3)
    assert single.dtype == np.float32
    np.testing.assert_array_equal(single, edge_preserving_mean(x.astype(np.float32), 2, block_bytes=1 << 30)[0])


def test_window_edges_reads_the_scene_through_the_weighted_window_and_a_run_keeps_its_scale(tmp_path):
    scene = synthetic_scene(20, 18, bands=6, seed=3)
    path = write_netcdf(tmp_path / "scene.nc", scene)
    d = load_dataset(f"cube:{path}?standardize=none&normalize=brightness&patch=5&window=edges")
    raw = scene["cube"].astype(np.float64)
    expected, s2 = edge_preserving_mean(raw / raw.mean(-1, keepdims=True), 2)
    assert_close_scaled(d.x, expected.reshape(-1, 6), rel=1e-5)
    record = d.metadata["cube"]
    assert record["window"] == "edges" and record["window_scale"] == pytest.approx(s2, rel=1e-5)
    assert_close_scaled(open_cube(f"cube:{path}", record).x, d.x, rel=1e-5)  # predict's spec need not repeat it
    # another scene is filtered with the training scene's scale, not its own
    other_scene = synthetic_scene(20, 18, bands=6, seed=4)
    again = open_cube(f"cube:{write_netcdf(tmp_path / 'other.nc', other_scene)}", record).x
    o = other_scene["cube"].astype(np.float64)
    own_scale, _ = edge_preserving_mean(o / o.mean(-1, keepdims=True), 2, record["window_scale"])
    assert_close_scaled(again, own_scale.reshape(-1, 6), rel=1e-5)
    older = {k: v for k, v in load_dataset(f"cube:{path}?patch=5").metadata["cube"].items() if k != "window"}  # saved before the option
    assert_close_scaled(open_cube(f"cube:{path}?window=edges", older).x, load_dataset(f"cube:{path}?patch=5").x, rel=1e-5)


@pytest.mark.parametrize("options, message", [("window=edges", "give its size too, e.g. ?patch=5&window=edges"),
                                              ("patch=5&window=bilateral", "window='bilateral' is unknown; use one of mean, edges")])
def test_a_window_without_a_patch_or_of_unknown_kind_is_refused(tmp_path, options, message):
    path = write_netcdf(tmp_path / "scene.nc", synthetic_scene(12, 12, bands=4, seed=0))
    with pytest.raises(DataError, match=message.replace("?", r"\?")):
        load_dataset(f"cube:{path}?{options}")
