"""The shared float comparison of tests/helpers.py, and the thread count the numerical tests run under."""

import os

import numpy as np
import pytest
import torch

from tests.helpers import assert_close_scaled

pytestmark = pytest.mark.numerical


def test_a_difference_small_against_the_norm_passes_even_where_elementwise_tolerances_fail():
    """The ADGM gradient case: an element near zero off by 2.4e-6 absolute, 3e-7 of the whole gradient's norm."""
    expected = torch.tensor([10.0, -4.0, 1e-7, 3.0])
    actual = expected + torch.tensor([0.0, 0.0, 2.4e-6, 0.0])
    assert not torch.allclose(actual, expected, rtol=1e-4, atol=1e-6)
    assert_close_scaled(actual, expected, rel=1e-6)
    assert_close_scaled(actual.numpy(), expected.double().numpy(), rel=1e-6)  # numpy and torch alike


def test_a_real_difference_fails_with_the_relative_size_and_the_worst_element():
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    actual = expected.copy()
    actual[1, 0] += 0.01
    with pytest.raises(AssertionError, match=r"what: .* is 0\.00183 of \|\|expected\|\| = 5\.48 .*index \(1, 0\): 3\.01 against 3"):
        assert_close_scaled(actual, expected, rel=1e-3, what="what")
    assert_close_scaled(actual, expected, rel=2e-3)


def test_shapes_nans_and_zero_norms_are_not_glossed_over():
    with pytest.raises(AssertionError, match="shape"):
        assert_close_scaled(np.zeros(3), np.zeros((3, 1)))
    assert_close_scaled(np.ones(3), 1.0)  # a number stands for a filled tensor
    assert_close_scaled(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    with pytest.raises(AssertionError, match="NaN"):
        assert_close_scaled(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))
    assert_close_scaled(torch.zeros(2, requires_grad=True), np.zeros(2))
    with pytest.raises(AssertionError, match="inf of"):
        assert_close_scaled(np.array([1e-30, 0.0]), np.zeros(2))


@pytest.mark.skipif("OMP_NUM_THREADS" not in os.environ, reason="OMP_NUM_THREADS not set: torch picks its own count")
def test_torch_computes_with_the_thread_count_asked_for():
    """scripts/test.sh sets OMP_NUM_THREADS to 1, then 2: the second pass is only a check if torch really uses 2."""
    assert torch.get_num_threads() == int(os.environ["OMP_NUM_THREADS"])
