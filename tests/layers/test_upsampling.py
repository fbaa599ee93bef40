import keras
import numpy as np
import pytest

from lps_keras.layers import (
    APSDownsampling2D,
    LowPassFilter2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
)
from tests.helpers import SHIFTS, run_layer_test, to_numpy


def _down(kind, stride, antialias):
    if kind == "aps":
        return APSDownsampling2D(stride, antialias=antialias, return_probs=True)
    return LPSDownsampling2D(stride, antialias=antialias, hidden_channels=4,
                             return_probs=True, seed=0)


@pytest.mark.parametrize("kind", ["aps", "lps"])
@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("antialias", [None, "lowpass3"])
def test_down_up_equivariance(rng, kind, stride, antialias):
    x = rng.normal(size=(2, 12, 12, 4)).astype("float32")
    down = _down(kind, stride, antialias)
    up = PolyphaseUpsampling2D(stride)

    def down_up(v):
        y, probs = down(v, training=False)
        return to_numpy(up(y, probs))

    z = down_up(x)
    for shift in SHIFTS:
        np.testing.assert_allclose(down_up(np.roll(x, shift, (1, 2))),
                                   np.roll(z, shift, (1, 2)), atol=1e-5)


def test_places_input_on_chosen_phase(rng):
    y = rng.normal(size=(3, 4, 4, 2)).astype("float32")
    chosen = [1, 3, 2]
    z = to_numpy(PolyphaseUpsampling2D(2)(y, np.eye(4, dtype="float32")[chosen]))
    for b, k in enumerate(chosen):
        i, j = divmod(k, 2)
        np.testing.assert_array_equal(z[b, i::2, j::2], y[b])
        assert np.count_nonzero(z[b]) == np.count_nonzero(y[b])


def test_up_inverts_down_on_the_chosen_phase(rng):
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    y, probs = APSDownsampling2D(return_probs=True)(x)
    z = to_numpy(PolyphaseUpsampling2D()(y, probs))
    mask = z != 0
    np.testing.assert_array_equal(z[mask], x[mask])
    assert mask.mean() == pytest.approx(0.25)


def test_antialias_interpolates_constants():
    y = np.full((1, 4, 4, 2), 2.0, "float32")
    z = PolyphaseUpsampling2D(2, antialias=LowPassFilter2D(3))(y, np.eye(4, dtype="float32")[[2]])
    np.testing.assert_allclose(to_numpy(z), 2.0, atol=1e-5)


def test_layer_contract(tmp_path, rng):
    probs = keras.ops.convert_to_tensor(np.eye(4, dtype="float32")[[0, 3]])
    for kwargs in [{}, {"antialias": "lowpass3"}]:
        # probs as a constant keeps the helper's single-input model valid.
        run_layer_test(PolyphaseUpsampling2D, kwargs, (2, 4, 4, 3), [(2, 8, 8, 3)], tmp_path,
                       call_kwargs={"probs": probs}, train=False)
