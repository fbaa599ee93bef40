import itertools

import keras
import numpy as np

from lps_keras.layers.reductions import invariant_mean, invariant_sum, set_softmax, set_sum
from tests.helpers import to_numpy


def _wide_range(rng, shape):
    """float32 terms over many binades: float32 sums of them depend on the order."""
    return (rng.normal(size=shape) * 10.0 ** rng.uniform(-4, 4, size=shape)).astype(np.float32)


def test_set_sum_is_the_same_for_every_order(rng):
    x = _wide_range(rng, (64, 4, 5))
    reference = to_numpy(set_sum(x, axis=1))
    float32_sums = set()
    for perm in itertools.permutations(range(4)):
        permuted = x[:, list(perm)]
        np.testing.assert_array_equal(to_numpy(set_sum(permuted, axis=1)), reference)
        float32_sums.add(permuted.sum(axis=1, dtype=np.float32).tobytes())
    assert len(float32_sums) > 1  # plain float32 sums do depend on the order here
    assert to_numpy(set_sum(x, axis=1, keepdims=True)).shape == (64, 1, 5)


def test_set_softmax_permutes_with_its_inputs(rng):
    logits = rng.normal(size=(32, 9)).astype(np.float64) * 3
    reference = to_numpy(set_softmax(logits))
    np.testing.assert_allclose(reference, to_numpy(keras.ops.softmax(logits)), rtol=1e-12)
    for _ in range(20):
        perm = rng.permutation(9)
        np.testing.assert_array_equal(to_numpy(set_softmax(logits[:, perm])), reference[:, perm])


def test_invariant_sum_agrees_across_pixel_orders(rng):
    # Float64 accumulation of float32 terms: reordering the pixels (as a circular shift
    # does) leaves the float32 result unchanged, where a float32 sum changes.
    x = _wide_range(rng, (16, 24, 24, 8))
    reference = to_numpy(invariant_sum(x, axis=(1, 2)))
    assert reference.dtype == np.float64
    changed = 0
    for shift in [(1, 0), (0, 1), (5, -7), (11, 13)]:
        rolled = np.roll(x, shift, (1, 2))
        np.testing.assert_array_equal(
            to_numpy(invariant_sum(rolled, axis=(1, 2))).astype(np.float32),
            reference.astype(np.float32))
        changed += int(np.any(to_numpy(keras.ops.sum(rolled, axis=(1, 2)))
                              != to_numpy(keras.ops.sum(x, axis=(1, 2)))))
    assert changed > 0
    np.testing.assert_allclose(to_numpy(invariant_mean(x, axis=(1, 2))),
                               x.astype(np.float64).mean((1, 2)), rtol=1e-12)
