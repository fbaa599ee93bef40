import numpy as np
import pytest

from lps_keras.layers import APSDownsampling2D, LowPassFilter2D
from tests.helpers import SHIFTS, expected_after_shift, run_layer_test, to_numpy


def numpy_aps(x, stride, norm):
    """Float64 reference written from the definition: slice, norm, argmax, per sample."""
    x = x.astype(np.float64)
    comps = [x[:, i::stride, j::stride] for i in range(stride) for j in range(stride)]
    base = norm.removesuffix("_min")
    if base == "l2":
        norms = np.stack([np.sqrt((c ** 2).sum(axis=(1, 2, 3))) for c in comps], 1)
    elif base == "l1":
        norms = np.stack([np.abs(c).sum(axis=(1, 2, 3)) for c in comps], 1)
    elif base == "non_abs_max":  # official: torch.max without abs, then argmax
        norms = np.stack([c.max(axis=(1, 2, 3)) for c in comps], 1)
    else:
        norms = np.stack([np.abs(c).max(axis=(1, 2, 3)) for c in comps], 1)
    index = norms.argmin(1) if norm.endswith("_min") else norms.argmax(1)
    return np.stack([comps[k][b] for b, k in enumerate(index)]), index


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("norm", ["l2", "l1", "linf", "l2_min", "l1_min", "non_abs_max"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_reference(stride, norm, seed):
    x = np.random.default_rng(seed).normal(size=(4, 12, 12, 3)).astype("float32")
    y, probs = APSDownsampling2D(stride, norm=norm, return_probs=True)(x)
    ref, index = numpy_aps(x, stride, norm)
    np.testing.assert_array_equal(np.argmax(to_numpy(probs), 1), index)
    np.testing.assert_allclose(to_numpy(y), ref, atol=1e-6)


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("antialias", [None, "lowpass3"])
@pytest.mark.parametrize("seed", [0, 1])
def test_shift_law(stride, antialias, seed):
    x = np.random.default_rng(seed).normal(size=(3, 12, 12, 4)).astype("float32")
    layer = APSDownsampling2D(stride, antialias=antialias, return_probs=True)
    y, probs = layer(x)
    index = np.argmax(to_numpy(probs), 1)
    for shift in SHIFTS:
        y_s = to_numpy(layer(np.roll(x, shift, (1, 2)))[0])
        np.testing.assert_allclose(y_s, expected_after_shift(y, index, shift, stride), atol=1e-5)
        np.testing.assert_allclose(y_s.mean((1, 2)), to_numpy(y).mean((1, 2)), atol=1e-5)


def test_score_unfiltered_selects_on_raw_input(rng):
    x = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    layer = APSDownsampling2D(antialias="lowpass3", score_unfiltered=True, return_probs=True)
    y, probs = layer(x)
    _, raw_index = numpy_aps(x, 2, "l2")
    np.testing.assert_array_equal(np.argmax(to_numpy(probs), 1), raw_index)
    blurred = to_numpy(LowPassFilter2D(3)(x))
    expected = np.stack([blurred[b, k // 2::2, k % 2::2] for b, k in enumerate(raw_index)])
    np.testing.assert_allclose(to_numpy(y), expected, atol=1e-6)


def test_batch_independence(rng):
    x = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    other = x.copy()
    other[1:] = rng.normal(size=(3, 8, 8, 3)) * 5
    layer = APSDownsampling2D()
    np.testing.assert_array_equal(to_numpy(layer(x))[0], to_numpy(layer(other))[0])


def test_probs_reuse_applies_given_selection(rng):
    x = rng.normal(size=(3, 8, 8, 2)).astype("float32")
    probs = np.eye(4, dtype="float32")[[3, 0, 2]]
    y = to_numpy(APSDownsampling2D()(x, probs=probs))
    for b, k in enumerate([3, 0, 2]):
        np.testing.assert_array_equal(y[b], x[b, k // 2::2, k % 2::2])


def test_odd_and_non_square_sizes_are_wrap_padded(rng):
    x = rng.normal(size=(2, 7, 10, 3)).astype("float32")
    y, probs = APSDownsampling2D(2, return_probs=True)(x)
    padded = np.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0)), mode="wrap")
    ref, index = numpy_aps(padded, 2, "l2")
    assert y.shape == (2, 4, 5, 3)
    np.testing.assert_allclose(to_numpy(y), ref, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, {"stride": 3, "norm": "l1"}, {"norm": "l1_min"},
                                    {"antialias": "lowpass3", "return_probs": True},
                                    {"antialias": "ddac3", "score_unfiltered": True}])
def test_layer_contract(tmp_path, kwargs):
    s = kwargs.get("stride", 2)
    shapes = [(2, 12 // s, 12 // s, 8)]
    if kwargs.get("return_probs"):
        shapes.append((2, s * s))
    run_layer_test(APSDownsampling2D, kwargs, (2, 12, 12, 8), shapes, tmp_path)


@pytest.mark.parametrize("norm,other", [("l2_min", "l2"), ("l1_min", "l1"),
                                        ("non_abs_max", "linf")])
def test_official_criteria_pick_other_components_than_their_counterparts(rng, norm, other):
    # Shifted inputs so signed max and largest magnitude disagree: the reference test above
    # would pass for a criterion wired to its counterpart only if they always agreed.
    x = (rng.normal(size=(64, 8, 8, 2)) - 1.5).astype("float32")
    picked = np.argmax(to_numpy(APSDownsampling2D(norm=norm, return_probs=True)(x)[1]), 1)
    counterpart = np.argmax(to_numpy(APSDownsampling2D(norm=other, return_probs=True)(x)[1]), 1)
    np.testing.assert_array_equal(picked, numpy_aps(x, 2, norm)[1])
    assert np.mean(picked != counterpart) > 0.3


def test_non_abs_max_on_negative_inputs(rng):
    # All values negative: the largest signed value is the one closest to zero.
    x = -np.abs(rng.normal(size=(16, 6, 6, 3))).astype("float32") - 0.1
    _, probs = APSDownsampling2D(norm="non_abs_max", return_probs=True)(x)
    np.testing.assert_array_equal(np.argmax(to_numpy(probs), 1), numpy_aps(x, 2, "non_abs_max")[1])


@pytest.mark.parametrize("norm", ["l2_min", "l1_min", "non_abs_max"])
def test_official_criteria_shift_law(rng, norm):
    x = rng.normal(size=(3, 12, 12, 4)).astype("float32")
    layer = APSDownsampling2D(2, norm=norm, return_probs=True)
    y, probs = layer(x)
    index = np.argmax(to_numpy(probs), 1)
    for shift in SHIFTS:
        y_s = to_numpy(layer(np.roll(x, shift, (1, 2)))[0])
        assert np.array_equal(y_s, expected_after_shift(y, index, shift, 2))


def test_nan_component_is_never_kept_by_min_criteria(rng):
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    x[:, 0, 0, 0] = np.nan  # component 0 holds a NaN (its norm would be NaN)
    x[:, 0::2, 0::2] *= 1e-3  # and would otherwise be the smallest
    _, probs = APSDownsampling2D(norm="l2_min", return_probs=True)(x)
    assert np.all(np.argmax(to_numpy(probs), 1) != 0)
