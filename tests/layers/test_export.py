"""A model using every layer survives `model.export` and loads without lps_keras."""

import keras
import numpy as np
import pytest

from lps_keras.layers import (
    DDAC2D,
    APSDownsampling2D,
    BlurPool2D,
    CircularPad2D,
    LowPassFilter2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
)
from tests.helpers import serve_in_fresh_process, to_numpy

pytestmark = pytest.mark.tf_only  # SavedModel export and serving


def _model_with_every_layer():
    inputs = keras.Input((16, 16, 8))
    x = CircularPad2D(1)(inputs)
    x = keras.layers.Conv2D(8, 3)(x)
    x = LowPassFilter2D(3)(x)
    x = DDAC2D(3, groups=4)(x)
    y, probs = LPSDownsampling2D(hidden_channels=4, antialias="lowpass3", return_probs=True,
                                 seed=0)(x)
    shortcut = APSDownsampling2D()(x, probs=probs)
    z, probs2 = APSDownsampling2D(stride=2, norm="l1", return_probs=True)(y + shortcut)
    blur = BlurPool2D(3)(z)
    up = PolyphaseUpsampling2D()(z, probs2)
    up = PolyphaseUpsampling2D(antialias="lowpass3")(up, probs)
    return keras.Model(inputs, [up, keras.layers.GlobalAveragePooling2D()(blur)])


def test_export_loads_in_fresh_process_without_lps_keras(tmp_path):
    model = _model_with_every_layer()
    x = np.random.default_rng(0).normal(size=(3, 16, 16, 8)).astype("float32")
    expected = [to_numpy(t) for t in model(x, training=False)]
    export_dir = str(tmp_path / "export")
    model.export(export_dir, verbose=False)
    served = serve_in_fresh_process(export_dir, x, tmp_path)
    assert len(served) == len(expected)
    for s, e in zip(served, expected, strict=True):
        np.testing.assert_allclose(s, e, atol=1e-5)


def test_keras_round_trip_of_the_same_model(tmp_path):
    model = _model_with_every_layer()
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 8)).astype("float32")
    path = str(tmp_path / "all.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    for a, b in zip(model(x, training=False), reloaded(x, training=False), strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
