import numpy as np
import pytest

from lps_keras.layers import phase_permutation, polyphase_merge, polyphase_split
from tests.helpers import to_numpy


@pytest.mark.parametrize("stride", [2, 3, 4])
def test_component_order(rng, stride):
    x = rng.normal(size=(2, 4 * stride, 2 * stride, 3)).astype("float32")
    comps = to_numpy(polyphase_split(x, stride))
    assert comps.shape == (2, stride * stride, 4, 2, 3)
    for i in range(stride):
        for j in range(stride):
            np.testing.assert_array_equal(comps[:, stride * i + j], x[:, i::stride, j::stride])


@pytest.mark.parametrize("stride", [2, 3])
def test_merge_inverts_split(rng, stride):
    x = rng.normal(size=(3, 3 * stride, 5 * stride, 2)).astype("float32")
    np.testing.assert_array_equal(to_numpy(polyphase_merge(polyphase_split(x, stride), stride)), x)


def test_stride2_permutation_is_xor_law():
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            code = 2 * (dy % 2) + (dx % 2)
            assert phase_permutation((dy, dx), 2) == [k ^ code for k in range(4)]


@pytest.mark.parametrize("stride", [2, 3])
def test_permutation_maps_components(rng, stride):
    x = rng.normal(size=(1, 4 * stride, 4 * stride, 2)).astype("float32")
    comps = to_numpy(polyphase_split(x, stride))
    for shift in [(1, 0), (0, 2), (-1, 3)]:
        shifted = to_numpy(polyphase_split(np.roll(x, shift, axis=(1, 2)), stride))
        perm = phase_permutation(shift, stride)
        for k in range(stride * stride):
            i, j = divmod(k, stride)
            low = ((i + shift[0]) // stride, (j + shift[1]) // stride)
            np.testing.assert_array_equal(shifted[:, perm[k]], np.roll(comps[:, k], low, (1, 2)))
