import os
import warnings

import pyro
import pytest
import torch

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
os.environ.setdefault("MPLBACKEND", "Agg")
SHARED_MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


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
