import keras
import numpy as np
import pytest

from lps_keras.layers import CircularPad2D
from tests.helpers import run_layer_test, to_numpy


@pytest.mark.parametrize(
    "padding",
    [0, 1, 3, (2, 5), ((0, 1), (3, 0)), ((9, 4), (2, 11)), 20],
)
def test_matches_numpy_wrap(rng, padding):
    x = rng.normal(size=(2, 5, 6, 3)).astype("float32")
    if isinstance(padding, int):
        pads = ((padding, padding), (padding, padding))
    elif isinstance(padding[0], int):
        pads = ((padding[0],) * 2, (padding[1],) * 2)
    else:
        pads = padding
    expected = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), mode="wrap")
    np.testing.assert_array_equal(to_numpy(CircularPad2D(padding)(x)), expected)


def test_unknown_spatial_size_and_wide_padding(rng):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, CircularPad2D(((7, 1), (0, 9)))(inputs))
    x = rng.normal(size=(1, 3, 4, 2)).astype("float32")
    expected = np.pad(x, ((0, 0), (7, 1), (0, 9), (0, 0)), mode="wrap")
    np.testing.assert_array_equal(to_numpy(model(x)), expected)


def test_layer_contract(tmp_path):
    run_layer_test(CircularPad2D, {"padding": (2, 3)}, (2, 4, 4, 3), [(2, 8, 10, 3)],
                   tmp_path, train=False)


@pytest.mark.parametrize("padding", [-1, (1, 2, 3), "same", ((1, -2), (0, 0))])
def test_bad_padding(padding):
    with pytest.raises(ValueError, match="padding"):
        CircularPad2D(padding)


def test_wrong_rank():
    with pytest.raises(ValueError):
        CircularPad2D(1)(np.zeros((2, 4, 4), "float32"))
