"""The selection argmax (`lps_keras.layers.downsampling.argmax`) on every backend.

It must rank in the scores' own dtype: Keras' JAX argmax compares float64 in float32, so two
components a float32 rounding apart tie there and the lowest index wins, which broke the
LPS selection's shift exactness on JAX. The reference is written from the documented
policy in NumPy: NaN as -inf, half precision compared in float32, -0.0 and negative
subnormals just below +0.0, positive subnormals as +0.0, ties to the lowest index.
"""

import itertools

import keras
import numpy as np
import pytest

from lps_keras.layers.downsampling import argmax, argmax_with_tiebreak
from tests.helpers import compiled


def _reference(rows, dtype):
    x = rows.astype(dtype).astype("float32" if dtype == "float16" else dtype)
    tiny = np.finfo(x.dtype).tiny
    x = np.where(np.isnan(x), -np.inf, x)
    small = np.abs(x) < tiny
    x = np.where(small & np.signbit(x), -tiny, np.where(small, 0.0, x)).astype(x.dtype)
    return np.argmax(x, axis=-1)  # NumPy: the first of equal maxima


def _rows():
    specials = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0, 1e-40, -1e-40, 5e-324,
                -5e-324, 3.0]
    rows = np.array(list(itertools.product(specials, repeat=3)))
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 1))
    # Float64 near-ties: 1e-12 relative is far below float32 rounding (6e-8).
    near = base + rng.integers(-1, 2, size=(300, 4)) * 1e-12 * np.abs(base)
    return rows, near


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_argmax_matches_the_reference_eager_and_compiled(dtype):
    specials, near = _rows()
    for rows in (specials, near):
        expected = _reference(rows, dtype)
        scores = keras.ops.cast(keras.ops.convert_to_tensor(rows), dtype)
        for fn in (argmax, compiled(argmax)):
            got = keras.ops.convert_to_numpy(fn(scores))
            np.testing.assert_array_equal(got, expected, err_msg=dtype)


def test_float64_near_ties_are_ranked_not_tied():
    # The winner is never the lowest index by default here: float64 tells them apart.
    scores = np.array([[1.0, 1.0 + 2e-16 * 4, 1.0], [2.0, 2.0, 2.0 + 1e-15]], "float64")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(argmax(scores)), [1, 2])


def test_tiebreak_ranks_float64_near_ties_in_the_second_statistic():
    scores = np.array([[5.0, 5.0, 5.0, 1.0]] * 2, "float64")
    second = np.array([[1.0, 1.0 + 1e-15, 1.0, 9.0], [1.0, 1.0, 1.0, 9.0]], "float64")
    got = keras.ops.convert_to_numpy(argmax_with_tiebreak(scores, second))
    np.testing.assert_array_equal(got, [1, 0])
