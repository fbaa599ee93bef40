import math

import numpy as np
import pytest

from lps_keras.layers import BlurPool2D, LowPassFilter2D
from tests.helpers import run_layer_test, to_numpy


def numpy_blur(x, size, mode):
    """Float64 reference: pad, then an explicit sum over kernel taps."""
    row = np.array([math.comb(size - 1, k) for k in range(size)], np.float64)
    kernel = np.outer(row, row) / row.sum() ** 2
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    np_mode = {"circular": "wrap", "zeros": "constant", "reflect": "reflect",
               "symmetric": "symmetric"}[mode]
    padded = np.pad(x.astype(np.float64), ((0, 0), (before, after), (before, after), (0, 0)),
                    mode=np_mode)
    h, w = x.shape[1:3]
    out = np.zeros(x.shape, np.float64)
    for dy in range(size):
        for dx in range(size):
            out += kernel[dy, dx] * padded[:, dy:dy + h, dx:dx + w, :]
    return out


@pytest.mark.parametrize("size", range(1, 8))
@pytest.mark.parametrize("mode", ["circular", "zeros", "reflect", "symmetric"])
def test_matches_numpy_reference(rng, size, mode):
    x = rng.normal(size=(2, 9, 10, 3)).astype("float32")
    y = to_numpy(LowPassFilter2D(size, padding_mode=mode)(x))
    np.testing.assert_allclose(y, numpy_blur(x, size, mode), atol=1e-5)


@pytest.mark.parametrize("size", [2, 3, 5])
def test_circular_blur_commutes_with_roll(rng, size):
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    blur = LowPassFilter2D(size)
    for shift in [(1, 0), (-3, 2), (5, 7)]:
        np.testing.assert_allclose(
            to_numpy(blur(np.roll(x, shift, (1, 2)))), np.roll(to_numpy(blur(x)), shift, (1, 2)),
            atol=1e-5)


@pytest.mark.parametrize("stride", [2, 3])
def test_blurpool_is_blur_then_decimate(rng, stride):
    x = rng.normal(size=(2, 9, 7, 3)).astype("float32")
    y = to_numpy(BlurPool2D(3, stride=stride)(x))
    np.testing.assert_allclose(y, numpy_blur(x, 3, "circular")[:, ::stride, ::stride], atol=1e-5)


def test_no_trainable_weights():
    layer = LowPassFilter2D(5)
    layer(np.zeros((1, 4, 4, 2), "float32"))
    assert layer.trainable_weights == []


def test_layer_contracts(tmp_path):
    run_layer_test(LowPassFilter2D, {"filter_size": 3}, (2, 8, 8, 4), [(2, 8, 8, 4)], tmp_path)
    run_layer_test(BlurPool2D, {"filter_size": 4, "stride": 2, "padding_mode": "reflect"},
                   (2, 8, 8, 4), [(2, 4, 4, 4)], tmp_path)


@pytest.mark.parametrize("kwargs, match", [
    ({"filter_size": 0}, "filter_size"),
    ({"filter_size": 8}, "filter_size"),
    ({"padding_mode": "wrap"}, "padding_mode"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LowPassFilter2D(**kwargs)


def test_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        BlurPool2D(3, stride=1)
