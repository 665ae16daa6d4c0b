"""The sample-quality yardstick: Frechet distance against scipy's sqrtm, precision/recall against scikit-learn's
neighbours, mode coverage, and the separation of a trained, a 1-epoch and a collapsed generator."""

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.neighbors import NearestNeighbors

from ppmodels.analysis.sample_quality import (frechet_distance, measure, mode_coverage, oscillation, precision_recall, quality_problems, quality_warnings, sample_quality,
                                              yardstick)
from ppmodels.data import load_dataset, prepare_data
from ppmodels.infer import TrainConfig, fit
from ppmodels.models import GAN


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def stick(digits, tmp_path_factory):
    return yardstick(digits, cache=tmp_path_factory.mktemp("cache"))


def direct_frechet(a, b):
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(ca @ cb).real
    return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * root)


def test_frechet_distance_equals_the_sqrtm_formula():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 6))
    b = a @ rng.standard_normal((6, 6)) * 0.5 + 1.0
    expected = direct_frechet(a, b)
    assert abs(frechet_distance(a, b) - expected) <= 1e-8 * abs(expected)
    assert abs(frechet_distance(a, a)) <= 1e-10 * np.trace(np.cov(a, rowvar=False))


def test_precision_recall_equal_a_brute_force_count():
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((80, 3)), rng.standard_normal((60, 3)) * 1.5 + 0.5

    def share_inside(query, centres):  # the k-th neighbour other than the point itself: k+1 with the point included
        radii = NearestNeighbors(n_neighbors=4).fit(centres).kneighbors(centres)[0][:, 3]
        d = np.linalg.norm(query[:, None] - centres[None], axis=-1)
        return (d <= radii[None]).any(1).mean()

    precision, recall = precision_recall(real, fake, k=3)
    assert precision == pytest.approx(share_inside(fake, real), abs=1e-6)
    assert recall == pytest.approx(share_inside(real, fake), abs=1e-6)
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, fake + 100) == (0.0, 0.0)


def test_frechet_of_data_with_itself_is_zero_and_rises_with_noise(digits, stick):
    test = np.asarray(digits.split("test").x)
    assert stick.test_accuracy > 0.9 and stick.path.is_file()
    features = stick.features(test)
    assert abs(frechet_distance(features, features)) <= 1e-6 * np.trace(np.cov(features, rowvar=False))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(test.shape).astype(np.float32)
    distances = [measure(stick, test, test + s * noise)["frechet_distance"] for s in (0.0, 0.1, 0.3, 1.0)]
    assert abs(distances[0]) < 1e-3 and distances == sorted(distances) and distances[1] > 0
    again = yardstick(digits, cache=stick.path.parent)  # read back from the cache: the same classifier
    # the same weights give the same features for the same batch (a batch of 5 against rows of the batch of 360
    # differs at 1e-7 where the matrix product takes another kernel path)
    assert all(torch.equal(a, b) for a, b in zip(again.net.state_dict().values(), stick.net.state_dict().values()))
    assert np.array_equal(again.features(test[:5]), stick.features(test[:5])) and again.test_accuracy == stick.test_accuracy


def test_coverage_flags_a_generator_of_one_class(digits, stick):
    test = digits.split("test")
    threes = np.asarray(test.x)[test.y.numpy() == 3]
    result = measure(stick, np.asarray(test.x), np.resize(threes, (len(test), *threes.shape[1:])))
    assert result["coverage"]["num_low_classes"] == 9 and 3 not in result["coverage"]["low_classes"]
    assert result["recall"] < 0.3 < result["precision"]
    assert "mode collapse" in quality_warnings(result)[0]
    even = mode_coverage(np.arange(100) % 10, np.full(10, 0.1))
    assert even["num_low_classes"] == 0 and even["shares"] == [0.1] * 10


class Collapsed:
    """A generator that lost its modes: every draw is the trained generator's image of one code."""

    def __init__(self, gan):
        self.gan = gan

    def sample(self, num, generator=None):
        return np.repeat(self.gan.sample(1, generator), num, axis=0)


def test_yardstick_separates_trained_one_epoch_and_collapsed_generators(digits, stick):
    data = prepare_data(digits, seed=0)
    scores = {}
    for name, epochs in (("one_epoch", 1), ("trained", 20)):
        gan = GAN(GAN.config_from_data(digits, net="mlp", z_dim=16, hidden=[128, 128], seed=0))
        fit(gan, data, TrainConfig(epochs=epochs, batch_size=64, seed=0))
        scores[name] = sample_quality(gan, digits, stick=stick)
    scores["collapsed"] = sample_quality(Collapsed(gan), digits, stick=stick)
    fd = {name: s["frechet_distance"] for name, s in scores.items()}
    assert fd["trained"] < 0.5 * fd["one_epoch"] and fd["trained"] < 0.5 * fd["collapsed"], fd
    assert scores["collapsed"]["coverage"]["num_low_classes"] == 9
    assert scores["trained"]["coverage"]["num_low_classes"] < scores["one_epoch"]["coverage"]["num_low_classes"]


def test_warnings_name_a_winning_discriminator_and_a_run_that_got_worse():
    quiet = {"coverage": {"num_low_classes": 0, "shares": [0.5, 0.5], "low_classes": []}}
    assert quality_warnings(quiet, {"discriminator_accuracy": 0.7}, [{"epoch": e, "frechet_distance": 100 / e} for e in range(1, 6)]) == []
    assert "wins outright" in quality_warnings(quiet, {"discriminator_accuracy": 1.0})[0]
    worse = [{"epoch": 1, "frechet_distance": 50.0}, {"epoch": 2, "frechet_distance": 10.0}, {"epoch": 3, "frechet_distance": 40.0}]
    assert "diverged or oscillates" in quality_warnings(quiet, None, worse)[0]
    flat = [{"epoch": e, "frechet_distance": 50.0 + e % 2} for e in range(1, 6)]
    assert "no progress" in quality_warnings(quiet, None, flat)[0]


#: per-epoch Frechet distances of two real 16-epoch digits runs, seed 0 (``ppmodels train gan --data digits --epochs 16
#: --z-dim 8 --set net=mlp --set hidden=[64]``): at DC-GAN's rates, and with ``--set g_lr=0.05`` (250 times), whose
#: generator jumps from mode to mode
HEALTHY = [715.0, 672.8, 604.6, 546.0, 492.3, 455.4, 425.5, 407.8, 397.7, 394.8, 399.2, 410.0, 413.6, 405.2, 390.3, 379.5]
SWINGING = [1013.2, 815.0, 875.3, 904.7, 804.5, 668.0, 892.8, 887.3, 635.2, 694.0, 650.8, 670.3, 396.6, 845.0, 353.9, 596.9]


def test_oscillation_is_the_swing_beyond_the_net_change_and_flags_a_swinging_run():
    assert oscillation([100.0, 80.0, 60.0, 50.0, 40.0, 30.0]) == pytest.approx(0.0, abs=1e-12)  # only falls
    up_down = [10.0, 15.0] * 4  # the last half: 10, 15, 10, 15: three steps of log 1.5, net log 1.5
    assert oscillation(up_down) == pytest.approx(2 * np.log(1.5) / 3, rel=1e-9)
    quiet = {"coverage": {"num_low_classes": 0, "shares": [0.5, 0.5], "low_classes": []}}
    records = [{"epoch": e, "frechet_distance": d} for e, d in enumerate(SWINGING, 1)]
    (swinging,) = quality_problems(quiet, None, records)
    assert swinging["code"] == "oscillates" and "between 354 and 845" in swinging["message"], swinging
    assert quality_problems(quiet, None, [{"epoch": e, "frechet_distance": d} for e, d in enumerate(HEALTHY, 1)]) == []
    assert quality_problems(quiet, None, records[:6]) == []  # three points in the last half: too few to judge a swing


def test_problems_carry_codes_and_a_non_finite_distance_is_a_divergence():
    collapsed = {"coverage": {"num_low_classes": 9, "shares": [1.0] + [0.0] * 9, "low_classes": list(range(1, 10))}}
    problems = quality_problems(collapsed, {"discriminator_accuracy": 0.995})
    assert [(p["code"], p["severity"]) for p in problems] == [("mode_collapse", "bad"), ("discriminator_wins", "bad")]
    assert quality_warnings(collapsed) == [problems[0]["message"]]
    blown = [{"epoch": 1, "frechet_distance": 80.0}, {"epoch": 2, "frechet_distance": 40.0}, {"epoch": 3, "frechet_distance": None}]
    (diverged,) = quality_problems(None, None, blown)
    assert diverged["code"] == "diverged" and "epoch 3 is not finite" in diverged["message"] and "40" in diverged["message"]
    assert quality_problems(None, None, blown[:2]) == []  # two epochs: too few to judge a trend


def test_a_cache_folder_that_cannot_be_written_measures_anyway_and_says_so(digits, stick, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not be kept in .*cache.*set XDG_CACHE_HOME to a writable folder"):
        fresh = yardstick(digits, cache=blocker / "yardstick")
    assert fresh.path is None and fresh.test_accuracy == stick.test_accuracy  # the same recipe and seed: the same classifier
