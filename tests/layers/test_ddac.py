import numpy as np
import pytest

from lps_keras.layers import DDAC2D
from tests.helpers import run_layer_test, to_numpy


def test_constant_input_is_preserved():
    # Kernels are normalised, so any constant map passes through unchanged.
    layer = DDAC2D(kernel_size=3, groups=2)
    x = np.full((2, 6, 6, 4), 3.5, "float32")
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), x, atol=1e-5)


def test_output_is_convex_combination_of_neighbours(rng):
    x = rng.normal(size=(1, 6, 6, 4)).astype("float32")
    y = to_numpy(DDAC2D(kernel_size=3, groups=4)(x, training=False))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    neigh = np.stack([padded[:, dy:dy + 6, dx:dx + 6] for dy in range(3) for dx in range(3)])
    assert np.all(y <= neigh.max(0) + 1e-5) and np.all(y >= neigh.min(0) - 1e-5)


def test_circular_equivariance(rng):
    layer = DDAC2D(kernel_size=3, groups=2)
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    y = to_numpy(layer(x, training=False))
    for shift in [(1, 1), (-2, 3), (7, 0)]:
        np.testing.assert_allclose(to_numpy(layer(np.roll(x, shift, (1, 2)), training=False)),
                                   np.roll(y, shift, (1, 2)), atol=1e-5)


def test_layer_contract(tmp_path):
    run_layer_test(DDAC2D, {"kernel_size": 3, "groups": 2}, (2, 8, 8, 4), [(2, 8, 8, 4)],
                   tmp_path)


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="groups"):
        DDAC2D(groups=3)(np.zeros((1, 4, 4, 4), "float32"))
