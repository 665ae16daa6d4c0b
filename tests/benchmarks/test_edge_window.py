import numpy as np
from scipy.ndimage import uniform_filter

from benchmarks.edge_window import edge_preserving_mean


def two_fields(noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    field = np.zeros((12, 12), dtype=int)
    field[:, 6:] = 1
    spectra = np.array([[1.0, 0.5, 0.2], [0.2, 0.6, 1.0]])
    return spectra[field] + rng.normal(0, noise, (12, 12, 3)), field


def test_one_pixel_is_the_weighted_mean_of_its_window():
    x, _ = two_fields()
    out, s2 = edge_preserving_mean(x, radius=2)
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
    kept, _ = edge_preserving_mean(x, radius=2)
    truth = np.array([[1.0, 0.5, 0.2], [0.2, 0.6, 1.0]])[field]
    edge = (slice(None), slice(4, 8))  # the two columns on each side of the edge
    assert np.abs(plain[edge] - truth[edge]).max() > 0.2  # the plain mean mixes the fields
    assert np.abs(kept[edge] - truth[edge]).max() < 0.05  # the weighted one keeps each pixel's field
    assert np.abs(kept - truth).std() < np.abs(x - truth).std()  # and still averages the noise away


def test_a_flat_scene_stays_flat():
    x = np.ones((6, 7, 4)) * np.array([0.3, 0.4, 0.5, 0.6])
    out, _ = edge_preserving_mean(x)
    np.testing.assert_allclose(out, x, rtol=1e-12)
