"""One NaN policy for every selection: the same component in eager, graph and XLA.

A NaN score counts as -inf: a component whose score is NaN (APS: it holds a NaN, so its
norm is NaN; LPS: it holds a NaN, so its logit is set to NaN) is never kept unless every
component's is, and then the lowest index is kept. A plain argmax is not portable: TF and
XLA order NaN differently (before this policy, APS picked component 0 in eager and 3
under XLA for the same input).
"""

import keras
import numpy as np
import pytest

from lps_keras.layers import APSDownsampling2D, LPSDownsampling2D
from lps_keras.layers.downsampling import argmax, argmax_with_tiebreak, has_tie
from tests.helpers import compiled

NAN = float("nan")


def _images():
    """Batch of 6: NaN in component 0, in everything, in component 3, in components 1
    and 2 (one pixel each), in one channel of component 2, and none."""
    x = np.random.default_rng(0).normal(size=(6, 8, 8, 3)).astype("float32")
    x[0, 0::2, 0::2] = np.nan
    x[1] = np.nan
    x[2, 1::2, 1::2] = np.nan
    x[3, 0, 1, 0] = np.nan
    x[3, 1, 0, 2] = np.nan
    x[4, 2, 4, 1] = np.nan
    return x


def _nan_components(x, stride=2):
    k = stride * stride
    return np.stack([np.isnan(x[:, i::stride, j::stride]).any(axis=(1, 2, 3))
                     for i in range(stride) for j in range(stride)], axis=1)[:, :k]


def _selections(fn, x):
    """Indices selected by `fn` in eager mode, compiled with XLA and (TensorFlow) in a
    tf.function graph."""
    modes = {
        "eager": keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(x))),
        "xla": keras.ops.convert_to_numpy(compiled(fn)(x)),
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        modes["graph"] = tf.function(fn)(tf.constant(x)).numpy()
    return modes


def _check(selected, x):
    for mode in selected:
        assert np.array_equal(selected["eager"], selected[mode]), selected
    nan = _nan_components(x)
    index = selected["eager"]
    for b in range(len(x)):
        if nan[b].all():
            assert index[b] == 0
        else:
            assert not nan[b, index[b]], (b, index[b], nan[b])


LAYERS = {
    "aps_l2": lambda: APSDownsampling2D(return_probs=True),
    "aps_l1": lambda: APSDownsampling2D(norm="l1", return_probs=True),
    "aps_linf": lambda: APSDownsampling2D(norm="linf", return_probs=True),
    "aps_lowpass": lambda: APSDownsampling2D(antialias="lowpass1", return_probs=True),
    "lps_conv": lambda: LPSDownsampling2D(hidden_channels=4, return_probs=True),
    "lps_perceptron": lambda: LPSDownsampling2D(logits_model="perceptron", return_probs=True),
    "lps_attention": lambda: LPSDownsampling2D(logits_model="attention", return_probs=True),
    "lps_graph": lambda: LPSDownsampling2D(logits_model="graph", return_probs=True),
}


@pytest.mark.parametrize("key", sorted(LAYERS))
def test_layers_select_the_same_component_with_nan_in_eager_graph_and_xla(key):
    keras.utils.set_random_seed(0)
    layer = LAYERS[key]()
    x = _images()
    layer(x[:1], training=False)

    def select(t):
        return keras.ops.argmax(layer(t, training=False)[1], axis=-1)

    _check(_selections(select, x), x)


SCORES = np.array([
    [NAN, 1.0, 3.0, 2.0],
    [NAN, NAN, NAN, NAN],
    [2.0, NAN, 2.0, 1.0],     # tie between 0 and 2, second decides
    [NAN, 5.0, NAN, 5.0],     # tie between 1 and 3, second NaN at 3 -> 1
    [float("-inf"), NAN, float("-inf"), float("-inf")],  # all tied at -inf: second decides
], dtype="float64")
SECOND = np.array([
    [0.0, 0.0, 0.0, 0.0],
    [NAN, NAN, NAN, NAN],
    [1.0, 9.0, 3.0, 0.0],
    [0.0, 1.0, 7.0, NAN],
    [NAN, 9.0, 2.0, 2.0],
], dtype="float64")


def test_argmax_helpers_follow_the_policy_in_every_mode():
    for fn, expected in (
        (lambda s: argmax_with_tiebreak(s, keras.ops.convert_to_tensor(SECOND)), [2, 0, 2, 1, 1]),
        (argmax, [2, 0, 0, 1, 0]),
    ):
        got = _selections(fn, SCORES)
        for mode, value in got.items():
            assert value.tolist() == expected, (mode, value)
    ties = _selections(has_tie, SCORES)
    assert all(bool(v) for v in ties.values())
    ties = _selections(has_tie, SCORES[:1])
    assert not any(bool(v) for v in ties.values())
