"""Scorer logits against a float64 NumPy reference that runs every convolution explicitly.

The conv, conv_skip and perceptron scorers end in a one-filter conv and a global mean, which
they compute as a pooled matmul where that is exact; the reference does not, so it checks
that shortcut (and the padding modes where it must not be taken).
"""

import numpy as np
import pytest

from lps_keras.layers.scorers import get_scorer
from tests.helpers import to_numpy

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


@pytest.mark.parametrize("name", ["conv", "conv_skip", "perceptron"])
@pytest.mark.parametrize("mode,size", CASES)
def test_logits_match_explicit_convolutions(rng, name, mode, size):
    channels = 5
    hidden = channels if name == "conv_skip" else 7
    components = rng.normal(size=(3, 4, *size, channels))
    scorer = get_scorer(name, hidden, mode, dtype="float64")
    scorer.build(components.shape)
    for weight in scorer.weights:  # random biases too, so every term is exercised
        weight.assign(rng.normal(size=weight.shape))
    logits = to_numpy(scorer(components))
    expected = _reference_logits(scorer, components, mode)
    assert np.ptp(expected) > 1e-3  # not a constant, so the comparison has teeth
    np.testing.assert_allclose(logits, expected, rtol=1e-10, atol=1e-10)
