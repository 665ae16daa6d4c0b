import math
import os
import tempfile

import pyro
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# the user cache (downloads, the sample-quality yardstick's classifier) points into a folder of this session, so tests
# neither read what an earlier run left in ~/.cache/ppmodels nor write there; processes the tests start inherit it
_CACHE = tempfile.TemporaryDirectory(prefix="ppmodels-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE.name
SHARED_MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_report_header(config):
    return thread_report()


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(thread_report())  # shown under -q too, so CI's log says which thread count ran


def thread_report() -> str:
    """The thread count torch computes with, beside the one asked for (scripts/test.sh runs the numerical tests under
    two counts: floating-point sums come out in another order with each)."""
    return f"torch threads: {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("PPMODELS_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or PPMODELS_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def pyro_state():
    """Each test starts with an empty param store, validation on, and fixed seeds (as Pyro's own tests do)."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def mnist_dir():
    path = os.path.abspath(SHARED_MNIST)
    if not os.path.isfile(os.path.join(path, "train-images-idx3-ubyte.gz")):
        pytest.skip(f"MNIST files not found in {path} (../shared/data/mnist beside the checkout)")
    return path


@pytest.fixture(scope="session")
def digits():
    from ppmodels.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def small_train_config():
    from ppmodels.infer import TrainConfig

    return TrainConfig(epochs=2, batch_size=64, lr=1e-3, patience=None, seed=0)


def _log_weights_match_elbo(model, x: torch.Tensor, log_weights: torch.Tensor, num_draws: int = 1000, sigmas: float = 4.0) -> None:
    """The summed mean of ``(S, N)`` log-weights and the mean of ``num_draws`` one-sample ELBOs of ``x`` (Pyro's loss)
    estimate the same number: assert they agree within ``sigmas`` Monte Carlo standard errors of their difference."""
    with model.evaluating(), torch.no_grad():
        elbos = torch.tensor([-model.elbo.loss(model.model, model.guide, x=x, num_data=len(x)) for _ in range(num_draws)])
    se = math.sqrt(float(log_weights.var(0).sum()) / len(log_weights) + float(elbos.var()) / num_draws)
    difference = float(log_weights.mean(0).sum() - elbos.mean())
    assert abs(difference) < sigmas * se, f"mean log-weight - ELBO = {difference:.4f}, {abs(difference) / se:.1f} standard errors ({se:.4f})"


@pytest.fixture
def log_weights_match_elbo():
    """A check that importance weights and the ELBO agree in expectation, with a tolerance from their Monte Carlo error
    (a many-draw ELBO, not one draw: one draw's error is as large as the weights' whole spread)."""
    return _log_weights_match_elbo
