"""Scorer logits against a float64 NumPy reference that runs every convolution explicitly.

The conv, conv_skip and perceptron scorers end in a one-filter conv and a global mean, which
they compute as a pooled matmul where that is exact; the reference does not, so it checks
that shortcut (and the padding modes where it must not be taken).
"""

import keras
import numpy as np
import pytest

from lps_keras.layers.scorers import get_scorer
from tests.helpers import gradients, to_numpy

NUMPY_PAD = {"circular": "wrap", "zeros": "constant", "reflect": "reflect",
             "symmetric": "symmetric"}


def _conv(x, conv, mode):
    """'same' conv of NHWC `x` with `conv`'s weights, padded like `_Scorer._apply_conv`."""
    kernel = to_numpy(conv.kernel)
    k = kernel.shape[0]
    before, after = (k - 1) // 2, k // 2
    xp = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode=NUMPY_PAD[mode])
    h, w = x.shape[1:3]
    out = sum(xp[:, a:a + h, b:b + w] @ kernel[a, b] for a in range(k) for b in range(k))
    return out + to_numpy(conv.bias) if conv.use_bias else out


def _reference_logits(scorer, components, mode):
    b, k = components.shape[:2]
    x = components.reshape((b * k,) + components.shape[2:])
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    if scorer.head_type == "official":
        # The official layers (learn_poly_sampling/layers/lps_logit_layers.py), explicitly:
        # every conv with its bias, the mean over (channels, H, W) of the last map.
        name = scorer.__class__.__name__
        if name == "PerceptronScorer":  # ComponentPerceptron: Conv2d(C, 1, 1)
            out = _conv(x, scorer.conv1, mode)
        else:  # LPSLogitLayersV2 / LPSLogitLayersSkip
            out = _conv(relu(_conv(x, scorer.conv1, mode)), scorer.conv2, mode)
            if name == "ConvSkipScorer":
                out = out + x
        return out.mean(axis=(1, 2, 3)).reshape(b, k)
    if scorer.__class__.__name__ == "ConvScorer":
        out = _conv(relu(_conv(x, scorer.conv1, mode)), scorer.conv2, mode)
    elif scorer.__class__.__name__ == "ConvSkipScorer":
        h = _conv(relu(_conv(x, scorer.conv1, mode)), scorer.conv2, mode)
        out = _conv(relu(x + h), scorer.head, mode)
    else:
        out = _conv(relu(_conv(x, scorer.conv1, mode)), scorer.conv2, mode)
    return out.mean(axis=(1, 2, 3)).reshape(b, k)


# Components of 1 pixel per side only with the paddings defined there.
CASES = [(mode, size) for mode in NUMPY_PAD for size in [(5, 6), (2, 2), (1, 3)]
         if mode in ("circular", "zeros") or min(size) > 1]


@pytest.mark.parametrize("head", ["single", "official"])
@pytest.mark.parametrize("name", ["conv", "conv_skip", "perceptron"])
@pytest.mark.parametrize("mode,size", CASES)
def test_logits_match_explicit_convolutions(rng, name, mode, size, head):
    channels = 5
    hidden = channels if name == "conv_skip" else 7
    components = rng.normal(size=(3, 4, *size, channels))
    scorer = get_scorer(name, hidden, mode, dtype="float64", head=head)
    scorer.build(components.shape)
    for weight in scorer.weights:  # random biases too, so every term is exercised
        weight.assign(rng.normal(size=weight.shape))
    logits = to_numpy(scorer(components))
    expected = _reference_logits(scorer, components, mode)
    assert np.ptp(expected) > 1e-3  # not a constant, so the comparison has teeth
    np.testing.assert_allclose(logits, expected, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------ official head, torch init


def _weights(scorer):
    return {w.path.split("/")[-2] + "/" + w.path.split("/")[-1]: to_numpy(w)
            for w in scorer.weights}


@pytest.mark.parametrize("name,shapes", [
    ("conv", {"conv1/kernel": (3, 3, 5, 7), "conv1/bias": (7,), "conv2/kernel": (3, 3, 7, 7),
              "conv2/bias": (7,)}),
    ("conv_skip", {"conv1/kernel": (3, 3, 5, 5), "conv1/bias": (5,),
                   "conv2/kernel": (3, 3, 5, 5), "conv2/bias": (5,)}),
    ("perceptron", {"conv1/kernel": (1, 1, 5, 1), "conv1/bias": (1,)}),
])
def test_official_head_has_the_official_parameters(name, shapes):
    scorer = get_scorer(name, None if name == "conv_skip" else 7, head="official")
    scorer.build((None, 4, 6, 6, 5))
    assert {key: value.shape for key, value in _weights(scorer).items()} == shapes


def test_official_conv_head_is_the_single_head_with_the_mean_filter(rng):
    # The same function up to a constant: single head with conv2 = mean of the h filters
    # gives the official logits minus the mean bias.
    components = rng.normal(size=(2, 4, 5, 5, 3))
    official = get_scorer("conv", 6, head="official", dtype="float64")
    single = get_scorer("conv", 6, dtype="float64")
    official.build(components.shape)
    single.build(components.shape)
    for weight in official.weights:
        weight.assign(rng.normal(size=weight.shape))
    single.conv1.set_weights(official.conv1.get_weights())
    kernel, bias = official.conv2.get_weights()
    single.conv2.kernel.assign(kernel.mean(axis=-1, keepdims=True))
    np.testing.assert_allclose(to_numpy(official(components)) - bias.mean(),
                               to_numpy(single(components)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["conv", "conv_skip"])
def test_official_head_gradients_reach_every_filter_as_in_pytorch(rng, name):
    # d mean_o(conv_o) / d kernel_o is the same for every filter o (1/h of the mean
    # filter's gradient), and d/d bias_o = 1/h: what PyTorch computes for the official
    # layer. A head that took only one filter would leave the others at zero.
    components = keras.ops.convert_to_tensor(rng.normal(size=(2, 4, 5, 5, 4)))
    scorer = get_scorer(name, 4, head="official", dtype="float64")
    scorer.build(components.shape)
    weights = [scorer.conv2.kernel, scorer.conv2.bias]
    mix = keras.ops.convert_to_tensor(rng.normal(size=(2, 4)))
    grads = gradients(lambda: keras.ops.sum(scorer(components) * mix), weights)
    g_kernel, g_bias = (to_numpy(g) for g in grads)
    assert np.abs(g_kernel).max() > 1e-3
    np.testing.assert_allclose(g_kernel, np.repeat(g_kernel[..., :1], 4, axis=-1),
                               rtol=1e-12)
    np.testing.assert_allclose(g_bias, np.full(4, g_bias[0]), rtol=1e-12)


@pytest.mark.parametrize("name", ["attention", "attention_bn", "graph"])
def test_official_head_is_refused_where_it_does_not_exist(name):
    with pytest.raises(ValueError, match="head='official'"):
        get_scorer(name, 4, head="official")


@pytest.mark.parametrize("kwargs,match", [({"head": "mean"}, "head"),
                                          ({"init": "pytorch"}, "init"),
                                          ({"bn_epsilon": -1.0}, "bn_epsilon"),
                                          ({"bn_momentum": 2}, "bn_momentum")])
def test_scorer_options_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_scorer("attention_bn", 4, **kwargs)


def test_attention_bn_epsilon_and_momentum_reach_batch_norm():
    scorer = get_scorer("attention_bn", 4, bn_epsilon=1e-5, bn_momentum=0.9)
    scorer.build((None, 4, 6, 6, 3))
    assert scorer.embed_norm.epsilon == 1e-5 and scorer.embed_norm.momentum == 0.9
    default = get_scorer("attention_bn", 4)
    default.build((None, 4, 6, 6, 3))
    assert default.embed_norm.epsilon == 1e-3 and default.embed_norm.momentum == 0.99
    clone = type(scorer).from_config(scorer.get_config())
    assert (clone.bn_epsilon, clone.bn_momentum) == (1e-5, 0.9)


@pytest.mark.parametrize("name", ["conv", "conv_skip", "attention", "attention_bn",
                                  "graph", "perceptron"])
def test_torch_init_bounds_every_conv_and_dense_layer(name):
    channels = 16
    scorer = get_scorer(name, channels, init="torch", head="single")
    scorer.build((None, 4, 6, 6, channels))
    layers = [layer for layer in scorer._flatten_layers(include_self=False)
              if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert layers
    for layer in layers:
        kernel = to_numpy(layer.kernel)
        bound = 1.0 / np.sqrt(np.prod(kernel.shape[:-1]))  # fan_in of the kernel
        assert np.abs(kernel).max() <= bound
        # Not just within the bound but spanning it: a 16-weight head alone reaches 0.9 of
        # it only 81% of the time, so draw the layer's initializer with 20 other seeds.
        init = layer.kernel_initializer
        draws = np.stack([to_numpy(type(init).from_config({**init.get_config(), "seed": s})(
            kernel.shape)) for s in range(20)])
        assert np.abs(draws).max() <= bound
        assert np.abs(draws).max() > 0.9 * bound, layer.name
        if layer.use_bias:
            bias = to_numpy(layer.bias)
            assert np.abs(bias).max() <= bound and np.all(bias != 0), layer.name


def test_keras_init_is_unchanged():
    scorer = get_scorer("conv", 16)
    scorer.build((None, 4, 6, 6, 16))
    assert np.all(to_numpy(scorer.conv1.bias) == 0)  # Keras' zero bias
