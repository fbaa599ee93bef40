"""A model using every layer survives `model.export` and loads without lps_keras."""

import json
import subprocess
import sys

import keras
import numpy as np

from lps_keras.layers import (
    DDAC2D,
    APSDownsampling2D,
    BlurPool2D,
    CircularPad2D,
    LowPassFilter2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
)
from tests.helpers import to_numpy

LOADER = """
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
outputs = served.serve(tf.constant(x))
outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
np.savez(sys.argv[3], *[o.numpy() for o in outputs])
print(json.dumps({"lps_keras_imported": any(m.startswith("lps_keras") for m in sys.modules)}))
"""


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
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", LOADER, export_dir, str(tmp_path / "x.npy"),
         str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path), check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"lps_keras_imported": False}
    served = np.load(tmp_path / "out.npz")
    assert len(served.files) == len(expected)
    for i, e in enumerate(expected):
        np.testing.assert_allclose(served[f"arr_{i}"], e, atol=1e-5)


def test_keras_round_trip_of_the_same_model(tmp_path):
    model = _model_with_every_layer()
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 8)).astype("float32")
    path = str(tmp_path / "all.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    for a, b in zip(model(x, training=False), reloaded(x, training=False), strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
