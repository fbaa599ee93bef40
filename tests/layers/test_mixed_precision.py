import keras
import numpy as np
import pytest

from lps_keras.layers import (
    APSDownsampling2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
)
from tests.helpers import to_numpy


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("layer_cls", [APSDownsampling2D, LPSDownsampling2D])
def test_outputs_in_compute_dtype_probs_in_float32(rng, policy, layer_cls):
    compute = policy.split("_")[1]
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    layer = layer_cls(return_probs=True, dtype=policy)
    for training in (False, True):
        y, probs = layer(x, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == compute
        assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    up = PolyphaseUpsampling2D(dtype=policy)(y, probs)
    assert keras.backend.standardize_dtype(up.dtype) == compute


def test_lps_scores_in_float32_under_mixed_precision(rng):
    # The scorer runs in float32 (its own policy), so it picks the same components as the
    # all-float32 layer with the same weights.
    x = rng.normal(size=(4, 8, 8, 4)).astype("float32")
    full = LPSDownsampling2D(hidden_channels=4, return_probs=True)
    mixed = LPSDownsampling2D(hidden_channels=4, return_probs=True, dtype="mixed_float16")
    full(x, training=False)
    mixed(x, training=False)
    mixed.set_weights(full.get_weights())
    assert mixed.scorer.compute_dtype == "float32"
    np.testing.assert_array_equal(to_numpy(mixed(x, training=False)[1]),
                                  to_numpy(full(x, training=False)[1]))
