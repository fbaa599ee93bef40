"""Bad input gets a ValueError naming the argument and what is allowed."""

import numpy as np
import pytest

from lps_keras.layers import (
    APSDownsampling2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
    get_antialias,
)

X = np.zeros((2, 8, 8, 4), "float32")


@pytest.mark.parametrize("layer_cls", [APSDownsampling2D, LPSDownsampling2D])
@pytest.mark.parametrize("stride", [1, 0, -2, 2.0, True])
def test_stride_below_two(layer_cls, stride):
    with pytest.raises(ValueError, match=r"`stride` must be an int >= 2"):
        layer_cls(stride=stride)


def test_upsampling_stride():
    with pytest.raises(ValueError, match="stride"):
        PolyphaseUpsampling2D(stride=1)


@pytest.mark.parametrize("layer", [APSDownsampling2D(), LPSDownsampling2D()])
@pytest.mark.parametrize("shape", [(8, 8, 4), (2, 1, 8, 8, 4)])
def test_wrong_rank(layer, shape):
    with pytest.raises(ValueError, match="rank-4 NHWC"):
        layer(np.zeros(shape, "float32"))


def test_integer_input():
    with pytest.raises(ValueError, match="floating-point"):
        APSDownsampling2D()(np.zeros((1, 4, 4, 3), "int32"))


@pytest.mark.parametrize("kwargs, name", [
    ({"norm": "l3"}, "norm"),
    ({"antialias": "blur3"}, "antialias"),
    ({"antialias": "lowpass9"}, "antialias"),
])
def test_aps_unknown_strings(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be") as info:
        APSDownsampling2D(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


@pytest.mark.parametrize("kwargs, name", [
    ({"logits_model": "mlp"}, "logits_model"),
    ({"train_mode": "gumbel_hard"}, "train_mode"),
    ({"inference_mode": "sample"}, "inference_mode"),
    ({"padding_mode": "wrap"}, "padding_mode"),
    ({"tau": 0.0}, "tau"),
    ({"tau": -1}, "tau"),
    ({"seed": "7"}, "seed"),
    ({"hidden_channels": 0}, "hidden_channels"),
])
def test_lps_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        LPSDownsampling2D(**kwargs)


def test_allowed_values_are_listed():
    with pytest.raises(ValueError, match="conv_skip.*attention_bn.*graph.*perceptron"):
        LPSDownsampling2D(logits_model="nope")


@pytest.mark.parametrize("layer", [APSDownsampling2D(), LPSDownsampling2D(hidden_channels=2)])
@pytest.mark.parametrize("probs_shape", [(2, 9), (2,), (2, 4, 1)])
def test_probs_of_wrong_shape(layer, probs_shape):
    with pytest.raises(ValueError, match=r"`probs` of shape \[batch, 4\]"):
        layer(X, probs=np.ones(probs_shape, "float32"))


def test_upsampling_probs_of_wrong_shape():
    with pytest.raises(ValueError, match=r"`probs` of shape \[batch, 9\]"):
        PolyphaseUpsampling2D(stride=3)(X, np.ones((2, 4), "float32"))


def test_conv_skip_with_mismatched_widths():
    with pytest.raises(ValueError, match=r"conv_skip.*`hidden_channels` \(8\).*channels \(4\)"):
        LPSDownsampling2D(logits_model="conv_skip", hidden_channels=8)(X)


def test_antialias_of_wrong_type():
    with pytest.raises(ValueError, match="antialias"):
        get_antialias(3)
