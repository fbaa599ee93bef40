"""Selection commutes with circular shifts bit for bit, on photo-like float32 inputs.

For every (image, shift) pair the downsampler's output for `roll(x)` must equal, with `==`,
its output for `x` rolled by the low-resolution shift of the selected component. The
inputs are photo-like (1/f noise, smoothed shapes): neighbouring pixels are nearly equal,
so component scores come close to ties and any dependence on the order in which pixels are
summed would flip selections (it did before scores were accumulated in float64: e.g. 152
of 4,320 pairs for the default LPS layer and 34 of 2,400 for APS l2 on these inputs).
"""

import keras
import numpy as np
import pytest

from lps_keras.layers import SCORERS, APSDownsampling2D, LPSDownsampling2D, polyphase_split
from tests.helpers import compiled, low_res_shift, natural_images

SIZE = 48  # divisible by 2 and 3
CHANNELS = 4


def _shifts(stride, count=12, seed=0):
    """`count` shifts in [-5, 5]^2 that cover every phase class modulo `stride`."""
    rng = np.random.default_rng(seed + stride)
    shifts = [(dy, dx) for dy in range(stride) for dx in range(stride)][:count]
    while len(shifts) < count:
        shifts.append(tuple(int(v) for v in rng.integers(-5, 6, 2)))
    return shifts


def _scores(layer, x):
    """The float64 scores the layer ranks components by."""
    if isinstance(layer, APSDownsampling2D):
        scored = x if layer.antialias_layer is None else layer.antialias_layer(x)
        return keras.ops.convert_to_numpy(layer.component_norms(scored))
    return keras.ops.convert_to_numpy(
        layer.compute_logits(polyphase_split(x, layer.stride), training=False))


def _expected(y, index, shift, stride):
    return np.stack([np.roll(y[b], low_res_shift(index[b], shift, stride), (0, 1))
                     for b in range(len(y))])


def _count_flips(forward, x, stride, shifts):
    """(flips, pairs): one call on `x`, one on all its shifts stacked into one batch."""
    y, probs = (keras.ops.convert_to_numpy(t) for t in forward(x))
    index = probs.argmax(1)
    shifted = np.concatenate([np.roll(x, shift, (1, 2)) for shift in shifts])
    y_s = keras.ops.convert_to_numpy(forward(shifted)[0]).reshape((len(shifts),) + y.shape)
    flips = sum(int(np.sum(np.any(y_s[n] != _expected(y, index, shift, stride),
                                  axis=(1, 2, 3))))
                for n, shift in enumerate(shifts))
    return flips, len(shifts) * len(x)


def _check_pairs(make_layer, stride, inits, images_per_init, jit_compile=False):
    """Returns (flips, pairs, near_ties) over `inits` fresh layers and their images."""
    flips = pairs = near_ties = 0
    shifts = _shifts(stride)
    for init in range(inits):
        keras.utils.set_random_seed(100 + init)
        layer = make_layer()
        x = natural_images(images_per_init, SIZE, CHANNELS, seed=init)
        if jit_compile:
            layer(x[:1], training=False)  # build (create the weights) outside the trace
            forward = compiled(lambda v, layer=layer: layer(v, training=False))
        else:
            forward = lambda v, layer=layer: layer(v, training=False)  # noqa: E731
        f, p = _count_flips(forward, x, stride, shifts)
        flips, pairs = flips + f, pairs + p
        scores = np.sort(_scores(layer, x), axis=1)
        gap = (scores[:, -1] - scores[:, -2]) / np.maximum(np.abs(scores).max(1), 1e-30)
        near_ties += int(np.sum(gap < 1e-5)) * len(shifts)
    return flips, pairs, near_ties


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("antialias", [None, "lowpass3"])
@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_aps_never_flips(norm, antialias, stride):
    flips, pairs, near_ties = _check_pairs(
        lambda: APSDownsampling2D(stride, norm=norm, antialias=antialias, return_probs=True),
        stride, inits=4, images_per_init=50)
    assert pairs >= 2000
    assert near_ties > 0  # scores within 1e-5 of a tie: float32 order could decide them
    assert flips == 0, f"{flips} of {pairs} pairs did not commute with the shift"


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("antialias", [None, "lowpass3"])
@pytest.mark.parametrize("norm", ["l2_min", "l1_min", "non_abs_max"])
def test_aps_official_criteria_never_flip(norm, antialias, stride):
    flips, pairs, near_ties = _check_pairs(
        lambda: APSDownsampling2D(stride, norm=norm, antialias=antialias, return_probs=True),
        stride, inits=2, images_per_init=50)
    assert pairs >= 1000
    assert flips == 0, f"{flips} of {pairs} pairs did not commute with the shift"


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("logits_model", SCORERS)
def test_lps_never_flips_at_initialisation(logits_model, stride):
    # The default width (None: the input channels) and many initialisations: near-ties
    # depend on the initial weights. The default scorer gets the most.
    inits = 30 if logits_model == "conv" else 10
    flips, pairs, near_ties = _check_pairs(
        lambda: LPSDownsampling2D(stride, logits_model=logits_model, return_probs=True),
        stride, inits=inits, images_per_init=12 if logits_model == "conv" else 20)
    assert pairs >= 2000
    assert near_ties > 0
    assert flips == 0, f"{flips} of {pairs} pairs did not commute with the shift"


@pytest.mark.parametrize("logits_model", ["conv", "conv_skip", "perceptron"])
def test_lps_official_head_and_torch_init_never_flip(logits_model):
    # The official head averages h filters and adds the mean bias: still a pooled
    # float64 sum, so still exact.
    flips, pairs, near_ties = _check_pairs(
        lambda: LPSDownsampling2D(2, logits_model=logits_model, scorer_head="official",
                                  scorer_init="torch", return_probs=True),
        2, inits=4, images_per_init=20)
    assert pairs >= 960
    assert near_ties > 0
    assert flips == 0, f"{flips} of {pairs} pairs did not commute with the shift"


@pytest.mark.parametrize("make_layer", [
    lambda: APSDownsampling2D(2, norm="l2", antialias="lowpass3", return_probs=True),
    lambda: LPSDownsampling2D(2, return_probs=True),
    lambda: LPSDownsampling2D(2, logits_model="graph", return_probs=True),
], ids=["aps_l2_lowpass3", "lps_conv", "lps_graph"])
def test_never_flips_under_xla(make_layer):
    flips, pairs, _ = _check_pairs(make_layer, 2, inits=2, images_per_init=48,
                                   jit_compile=True)
    assert pairs >= 1000 and flips == 0, f"{flips} of {pairs} pairs flipped under XLA"


@pytest.mark.parametrize("make_layer", [
    lambda: APSDownsampling2D(2, norm="l2", return_probs=True),
    lambda: LPSDownsampling2D(2, return_probs=True),
], ids=["aps_l2", "lps_conv"])
def test_never_flips_under_mixed_precision(make_layer):
    keras.config.set_dtype_policy("mixed_float16")  # reset by the autouse fixture
    flips, pairs, _ = _check_pairs(make_layer, 2, inits=4, images_per_init=24)
    assert pairs >= 1000 and flips == 0, f"{flips} of {pairs} pairs flipped in float16"


# ---------------------------------------------------------------- ties


def _flips_on(layer, x, stride):
    return _count_flips(lambda v: layer(v, training=False), x, stride, _shifts(stride))[0]


def test_dead_scorer_ties_are_broken_by_the_input_norm():
    # A scorer whose hidden features are all zero (dead ReLUs) gives every component the
    # same logit. The second criterion (l2 norm of the component) still follows the shift.
    x = natural_images(16, 16, CHANNELS, seed=3)
    layer = LPSDownsampling2D(2, hidden_channels=4, return_probs=True)
    layer(x, training=False)
    layer.scorer.conv1.bias.assign(np.full((4,), -1e3, np.float32))
    logits = _scores(layer, x)
    assert np.all(logits == logits[:, :1])  # an exact tie in every sample
    assert _flips_on(layer, x, 2) == 0


def test_l1_ties_after_a_blur_are_broken_by_the_pixel_spread():
    # A binomial blur gives every component of a non-negative input the same l1 norm in
    # exact arithmetic; in float64 some of them tie exactly.
    x = natural_images(200, 16, CHANNELS, seed=4)
    layer = APSDownsampling2D(2, norm="l1", antialias="lowpass3", return_probs=True)
    norms = np.sort(_scores(layer, x), axis=1)
    assert np.sum(norms[:, -1] == norms[:, -2]) > 0
    assert _flips_on(layer, x, 2) == 0


def test_l1_min_ties_after_a_blur_are_broken_by_the_smallest_spread():
    # As above, but keeping the smallest norm: ties for the minimum occur and the second
    # criterion (smallest spread) follows the shift, where the lowest index would not.
    x = natural_images(200, 16, CHANNELS, seed=4)
    layer = APSDownsampling2D(2, norm="l1_min", antialias="lowpass3", return_probs=True)
    norms = np.sort(_scores(layer, x), axis=1)
    assert np.sum(norms[:, 0] == norms[:, 1]) > 0
    assert _flips_on(layer, x, 2) == 0


def test_constant_input_keeps_the_lowest_index():
    # The documented limit, harmless here: identical components tie in every criterion,
    # the lowest index wins whatever the shift, and the output is the same either way.
    x = np.full((2, 8, 8, 3), 0.7, np.float32)
    for layer in (APSDownsampling2D(2, return_probs=True),
                  LPSDownsampling2D(2, return_probs=True)):
        y, probs = layer(x, training=False)
        for shift in _shifts(2):
            y_s, probs_s = layer(np.roll(x, shift, (1, 2)), training=False)
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(probs_s).argmax(1), 0)
            assert np.array_equal(keras.ops.convert_to_numpy(y_s),
                                  keras.ops.convert_to_numpy(y))


def test_a_total_tie_is_the_one_case_a_shift_can_change():
    # Components 0 and 1 hold the same values, one low-resolution pixel apart: every norm
    # ties them, but they differ as maps. The lowest index wins, so
    # shifting by one pixel horizontally swaps which content is kept: the limit the README
    # documents.
    rng = np.random.default_rng(5)
    a = rng.normal(size=(1, 4, 4, 2)).astype(np.float32) + 3.0
    comps = [a, np.roll(a, 1, axis=2), 0.1 * rng.normal(size=a.shape),
             0.1 * rng.normal(size=a.shape)]
    x = np.zeros((1, 8, 8, 2), np.float32)
    for k, comp in enumerate(comps):
        i, j = divmod(k, 2)
        x[:, i::2, j::2] = comp
    aps = APSDownsampling2D(2, return_probs=True)
    norms = _scores(aps, x)[0]
    assert norms[0] == norms[1] and norms[0] > max(norms[2:])
    assert _flips_on(aps, x, 2) > 0
    # An LPS scorer that ties every component falls back to the same l2 norms.
    lps = LPSDownsampling2D(2, hidden_channels=2, return_probs=True)
    lps(x, training=False)
    lps.scorer.conv1.bias.assign(np.full((2,), -1e3, np.float32))
    assert len(set(_scores(lps, x)[0])) == 1
    assert _flips_on(lps, x, 2) > 0
