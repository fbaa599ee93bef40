import numpy as np
import pytest

from lps_keras.layers import DDAC2D
from tests.helpers import batch_norm_tolerance, run_layer_test, to_numpy


def test_constant_input_is_preserved():
    # Kernels are normalised, so any constant map passes through unchanged.
    layer = DDAC2D(kernel_size=3, groups=2)
    x = np.full((2, 6, 6, 4), 3.5, "float32")
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), x, atol=1e-5)


def test_output_is_convex_combination_of_neighbours(rng):
    x = rng.normal(size=(1, 6, 6, 4)).astype("float32")
    y = to_numpy(DDAC2D(kernel_size=3, groups=4)(x, training=False))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    neigh = np.stack([padded[:, dy:dy + 6, dx:dx + 6] for dy in range(3) for dx in range(3)])
    assert np.all(y <= neigh.max(0) + 1e-5) and np.all(y >= neigh.min(0) - 1e-5)


def test_circular_equivariance(rng):
    layer = DDAC2D(kernel_size=3, groups=2)
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    y = to_numpy(layer(x, training=False))
    for shift in [(1, 1), (-2, 3), (7, 0)]:
        np.testing.assert_allclose(to_numpy(layer(np.roll(x, shift, (1, 2)), training=False)),
                                   np.roll(y, shift, (1, 2)), atol=1e-5)


def test_layer_contract(tmp_path):
    run_layer_test(DDAC2D, {"kernel_size": 3, "groups": 2}, (2, 8, 8, 4), [(2, 8, 8, 4)],
                   tmp_path)


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="groups"):
        DDAC2D(groups=3)(np.zeros((1, 4, 4, 4), "float32"))


# ------------------------------------------------ official options (softmax, BN epsilon)


def _official_ddac(x, layer, eps):
    """NumPy transcription of the official DDAC forward (raymondyeh07/
    learnable_polyphase_sampling, layers/lowpass_filter.py), in NCHW with its reshapes,
    BatchNorm in inference mode, circular padding."""
    k, g = layer.kernel_size, layer.groups
    x = x.astype(np.float64).transpose(0, 3, 1, 2)
    n, c, h, w = x.shape
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="wrap")
    unf = np.stack([xp[:, :, a:a + h, b:b + w] for a in range(k) for b in range(k)], 2)
    weight = to_numpy(layer.kernel_predictor.kernel).astype(np.float64)  # [k, k, c, o]
    weight = weight.transpose(3, 2, 0, 1).reshape(g * k * k, c, k * k)
    sigma = np.einsum("nctij,oct->noij", unf, weight)
    gamma, beta, mean, var = (to_numpy(v).astype(np.float64)[None, :, None, None]
                              for v in layer.kernel_norm.weights)
    sigma = (sigma - mean) / np.sqrt(var + eps) * gamma + beta
    sigma = np.exp(sigma - sigma.max(1, keepdims=True))
    sigma = sigma / sigma.sum(1, keepdims=True)  # nn.Softmax(dim=1): all g*k*k jointly
    sigma = sigma.reshape(n, 1, g * k * k, h * w)
    xu = unf.reshape(n, c, k * k, h * w)
    xu = xu.transpose(1, 0, 2, 3).reshape(g, c // g, n, k * k, h * w).transpose(2, 0, 1, 3, 4)
    sigma = sigma.transpose(2, 0, 1, 3).reshape(g, k * k, n, 1, h * w).transpose(2, 0, 3, 1, 4)
    out = np.sum(xu * sigma, axis=3).reshape(n, c, h, w)
    return out.transpose(0, 2, 3, 1)


def _randomise_bn(layer, rng):
    gamma, beta, mean, var = layer.kernel_norm.weights
    size = gamma.shape[0]
    gamma.assign(rng.uniform(0.5, 2.0, size))
    beta.assign(rng.normal(size=size))
    mean.assign(rng.normal(size=size) * 0.1)
    var.assign(rng.uniform(1e-4, 1e-3, size))  # small: epsilon 1e-5 vs 1e-3 matters


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_joint_softmax_matches_official_formula(rng, groups):
    x = rng.normal(size=(2, 6, 7, 4)).astype("float32")
    layer = DDAC2D(kernel_size=3, groups=groups, softmax="joint", epsilon=1e-5,
                   dtype="float64")
    layer.build(x.shape)
    _randomise_bn(layer, rng)
    y = to_numpy(layer(x.astype("float64"), training=False))
    np.testing.assert_allclose(y, _official_ddac(x, layer, 1e-5), **batch_norm_tolerance())
    if groups > 1:  # the default (per-group softmax, Keras epsilon) is another function
        other = DDAC2D(kernel_size=3, groups=groups, dtype="float64")
        other.build(x.shape)
        other.set_weights(layer.get_weights())
        assert np.abs(to_numpy(other(x.astype("float64"), training=False))
                      - _official_ddac(x, layer, 1e-5)).max() > 1e-3


def test_epsilon_reaches_batch_norm(rng):
    x = rng.normal(size=(1, 5, 5, 2)).astype("float64")
    layer = DDAC2D(kernel_size=3, groups=1, epsilon=1e-5, dtype="float64")
    layer.build(x.shape)
    _randomise_bn(layer, rng)
    y = to_numpy(layer(x, training=False))
    np.testing.assert_allclose(y, _official_ddac(x, layer, 1e-5), **batch_norm_tolerance())
    assert np.abs(y - _official_ddac(x, layer, 1e-3)).max() > 1e-3
    assert layer.kernel_norm.epsilon == 1e-5 and DDAC2D().kernel_norm.epsilon == 1e-3


def test_momentum_reaches_batch_norm():
    assert DDAC2D(momentum=0.9).kernel_norm.momentum == 0.9
    assert DDAC2D().kernel_norm.momentum == 0.99


def test_joint_equals_per_group_for_one_group(rng):
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    joint = DDAC2D(kernel_size=3, groups=1, softmax="joint")
    per_group = DDAC2D(kernel_size=3, groups=1)
    joint.build(x.shape)
    per_group.build(x.shape)
    per_group.set_weights(joint.get_weights())
    np.testing.assert_array_equal(to_numpy(joint(x, training=False)),
                                  to_numpy(per_group(x, training=False)))


def test_joint_softmax_scales_a_constant_input_by_group_share():
    # Per group, the kernels sum to the group's share of one softmax: the group outputs
    # of a constant input add up to the input value (per-group kernels give it per group).
    layer = DDAC2D(kernel_size=3, groups=2, softmax="joint")
    x = np.full((1, 6, 6, 4), 2.0, "float32")
    y = to_numpy(layer(x, training=False))
    np.testing.assert_allclose(y[..., 0] + y[..., 2], 2.0, atol=1e-5)
    assert np.abs(y - 2.0).max() > 1e-2


@pytest.mark.parametrize("softmax", ["joint", "per_group"])
def test_circular_equivariance_per_softmax(rng, softmax):
    layer = DDAC2D(kernel_size=3, groups=2, softmax=softmax, epsilon=1e-5)
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    y = to_numpy(layer(x, training=False))
    for shift in [(1, 1), (-2, 3), (7, 0)]:
        np.testing.assert_allclose(to_numpy(layer(np.roll(x, shift, (1, 2)), training=False)),
                                   np.roll(y, shift, (1, 2)), atol=1e-5)


def test_official_options_round_trip(tmp_path):
    options = {"softmax": "joint", "epsilon": 1e-5, "momentum": 0.9}
    layer = run_layer_test(DDAC2D, {"kernel_size": 3, "groups": 2, **options},
                           (2, 8, 8, 4), [(2, 8, 8, 4)], tmp_path)
    clone = DDAC2D.from_config(layer.get_config())
    assert {key: getattr(clone, key) for key in options} == options
    assert clone.kernel_norm.epsilon == 1e-5


@pytest.mark.parametrize("kwargs,match", [({"softmax": "global"}, "softmax"),
                                          ({"epsilon": 0}, "epsilon"),
                                          ({"momentum": 1.5}, "momentum")])
def test_official_options_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DDAC2D(**kwargs)
