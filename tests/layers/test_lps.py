import keras
import numpy as np
import pytest

from lps_keras.layers import SCORERS, LPSDownsampling2D, phase_permutation, polyphase_split
from tests.helpers import SHIFTS, expected_after_shift, gradients, run_layer_test, to_numpy


def _lps(**kwargs):
    skip = kwargs.get("logits_model") == "conv_skip"  # its width must equal the input's
    kwargs.setdefault("hidden_channels", None if skip else 8)
    kwargs.setdefault("seed", 3)
    return LPSDownsampling2D(**kwargs)


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("logits_model", ["conv", "attention"])
@pytest.mark.parametrize("seed", [0, 1])
def test_shift_law_at_inference(stride, logits_model, seed):
    x = np.random.default_rng(seed).normal(size=(3, 12, 12, 4)).astype("float32")
    layer = _lps(stride=stride, logits_model=logits_model, return_probs=True)
    y, probs = layer(x, training=False)
    probs = to_numpy(probs)
    np.testing.assert_array_equal(probs.max(1), 1.0)
    index = probs.argmax(1)
    for shift in SHIFTS:
        y_s = to_numpy(layer(np.roll(x, shift, (1, 2)), training=False)[0])
        np.testing.assert_allclose(y_s, expected_after_shift(y, index, shift, stride), atol=1e-5)
        np.testing.assert_allclose(y_s.mean((1, 2)), to_numpy(y).mean((1, 2)), atol=1e-5)


@pytest.mark.parametrize("logits_model", SCORERS)
@pytest.mark.parametrize("stride", [2, 3])
def test_scorer_logits_permute_with_shift(rng, logits_model, stride):
    x = rng.normal(size=(1, 12, 12, 6)).astype("float32")  # batch size 1 must work
    layer = _lps(stride=stride, logits_model=logits_model, hidden_channels=None)
    layer(x, training=False)
    for shift in [(1, 1), (0, 1), (2, -1)]:
        logits = to_numpy(layer.compute_logits(polyphase_split(x, stride), training=False))
        shifted = np.roll(x, shift, (1, 2))
        logits_s = to_numpy(layer.compute_logits(polyphase_split(shifted, stride),
                                                 training=False))
        perm = phase_permutation(shift, stride)
        np.testing.assert_allclose(logits_s[:, perm], logits, atol=1e-5)
        assert np.ptp(logits) > 1e-4  # the scorer is not constant, so the test has teeth


@pytest.mark.parametrize("logits_model", SCORERS)
def test_batch_independence(rng, logits_model):
    x = rng.normal(size=(4, 8, 8, 4)).astype("float32")
    other = x.copy()
    other[1:] = rng.normal(size=(3, 8, 8, 4)) * 3
    layer = _lps(logits_model=logits_model, inference_mode="softmax")
    a = to_numpy(layer(x, training=False))[0]
    b = to_numpy(layer(other, training=False))[0]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_batch_independence_in_softmax_training(rng):
    x = rng.normal(size=(4, 8, 8, 4)).astype("float32")
    other = x.copy()
    other[1:] = rng.normal(size=(3, 8, 8, 4))
    layer = _lps(train_mode="softmax")
    np.testing.assert_allclose(to_numpy(layer(x, training=True))[0],
                               to_numpy(layer(other, training=True))[0], atol=1e-6)


@pytest.mark.parametrize("train_mode", ["gumbel", "softmax"])
@pytest.mark.parametrize("hard", [False, True])
def test_training_probs(rng, train_mode, hard):
    x = rng.normal(size=(6, 8, 8, 4)).astype("float32")
    layer = _lps(train_mode=train_mode, hard=hard, return_probs=True)
    y, probs = layer(x, training=True)
    probs = to_numpy(probs)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    comps = to_numpy(polyphase_split(x, 2))
    np.testing.assert_allclose(to_numpy(y), np.einsum("bk,bkhwc->bhwc", probs, comps),
                               atol=1e-5)
    if hard:
        assert set(np.unique(probs)) <= {0.0, 1.0}
        np.testing.assert_array_equal(probs.sum(1), 1.0)
    else:
        assert np.all(probs < 1.0)  # relaxed, not one-hot


def test_gumbel_noise_changes_between_calls_and_is_seeded(rng):
    x = rng.normal(size=(4, 8, 8, 4)).astype("float32")
    a = _lps(return_probs=True, seed=11)
    b = _lps(return_probs=True, seed=11)
    a(x, training=False)
    b(x, training=False)
    b.set_weights(a.get_weights())
    p1 = to_numpy(a(x, training=True)[1])
    p2 = to_numpy(a(x, training=True)[1])
    assert not np.allclose(p1, p2)
    np.testing.assert_allclose(to_numpy(b(x, training=True)[1]), p1, atol=1e-6)


@pytest.mark.parametrize("logits_model", SCORERS)
@pytest.mark.parametrize("hard", [False, True])
def test_gradients_reach_every_scorer_weight(rng, logits_model, hard):
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    layer = _lps(logits_model=logits_model, hard=hard, train_mode="softmax", tau=2.0)
    layer(x, training=False)
    target = rng.normal(size=(2, 4, 4, 4)).astype("float32")
    weights = layer.scorer.trainable_weights
    grads = gradients(
        lambda: keras.ops.sum((layer(x, training=True) - target) ** 2), weights)
    assert weights
    for w, g in zip(weights, grads, strict=True):
        assert g is not None, w.path
        assert np.any(to_numpy(g) != 0), w.path


def test_tau_is_a_variable_that_changes_the_relaxation(rng):
    x = rng.normal(size=(4, 8, 8, 4)).astype("float32")
    layer = _lps(train_mode="softmax", return_probs=True)
    layer(x, training=False)
    assert not layer.tau.trainable
    warm = to_numpy(layer(x, training=True)[1])
    layer.tau.assign(0.01)
    cold = to_numpy(layer(x, training=True)[1])
    assert cold.max(1).mean() > warm.max(1).mean()
    np.testing.assert_array_equal(cold.argmax(1), warm.argmax(1))


def test_softmax_inference_is_equivariant(rng):
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    layer = _lps(inference_mode="softmax", return_probs=True)
    y, probs = layer(x, training=False)
    assert np.all(to_numpy(probs) < 1.0)
    # Soft weights permute with the components; for an even shift nothing permutes.
    y_s = layer(np.roll(x, (2, 4), (1, 2)), training=False)[0]
    np.testing.assert_allclose(to_numpy(y_s), np.roll(to_numpy(y), (1, 2), (1, 2)), atol=1e-5)


def test_unknown_spatial_size_and_odd_sizes(rng):
    inputs = keras.Input((None, None, 4))
    outputs = _lps()(inputs)
    model = keras.Model(inputs, outputs)
    x = rng.normal(size=(2, 7, 9, 4)).astype("float32")
    assert tuple(model(x, training=False).shape) == (2, 4, 5, 4)


@pytest.mark.parametrize("logits_model", SCORERS)
def test_layer_contract(tmp_path, logits_model):
    kwargs = {"logits_model": logits_model, "return_probs": True, "seed": 1}
    if logits_model != "conv_skip":
        kwargs["hidden_channels"] = 4
    run_layer_test(LPSDownsampling2D, kwargs, (2, 8, 8, 8), [(2, 4, 4, 8), (2, 4)], tmp_path)


@pytest.mark.parametrize("kwargs", [
    {"stride": 3, "antialias": "lowpass3", "hard": True},
    {"antialias": "ddac3", "score_unfiltered": True, "train_mode": "softmax",
     "inference_mode": "softmax", "tau": 0.5},
])
def test_layer_contract_options(tmp_path, kwargs):
    s = kwargs.get("stride", 2)
    run_layer_test(LPSDownsampling2D, kwargs, (2, 12, 12, 8), [(2, 12 // s, 12 // s, 8)],
                   tmp_path)


# ------------------------------------------------------- official-code scorer options

OFFICIAL_OPTIONS = [
    {"logits_model": "conv", "scorer_head": "official", "scorer_init": "torch"},
    {"logits_model": "conv_skip", "scorer_head": "official", "scorer_init": "torch"},
    {"logits_model": "perceptron", "scorer_head": "official"},
    {"logits_model": "attention_bn", "scorer_init": "torch", "scorer_bn_epsilon": 1e-5,
     "scorer_bn_momentum": 0.9},
]


@pytest.mark.parametrize("options", OFFICIAL_OPTIONS,
                         ids=lambda o: f"{o['logits_model']}")
def test_layer_contract_official_options(tmp_path, options):
    kwargs = {**options, "return_probs": True, "seed": 1}
    if options["logits_model"] != "conv_skip":
        kwargs["hidden_channels"] = 4
    layer = run_layer_test(LPSDownsampling2D, kwargs, (2, 8, 8, 8), [(2, 4, 4, 8), (2, 4)],
                           tmp_path)
    clone = LPSDownsampling2D.from_config(layer.get_config())
    for key, value in options.items():
        assert getattr(clone, key) == value, key
    assert clone.scorer.head_type == options.get("scorer_head", "single")
    assert clone.scorer.init == options.get("scorer_init", "keras")


def test_official_options_default_to_the_original_layer():
    config = LPSDownsampling2D().get_config()
    assert (config["scorer_head"], config["scorer_init"], config["scorer_bn_epsilon"],
            config["scorer_bn_momentum"]) == ("single", "keras", 1e-3, 0.99)
    old = {key: value for key, value in config.items() if not key.startswith("scorer_")}
    assert LPSDownsampling2D.from_config(old).get_config() == config  # old saved configs


@pytest.mark.parametrize("kwargs,match", [
    ({"logits_model": "graph", "scorer_head": "official"}, "scorer_head"),
    ({"scorer_head": "multi"}, "scorer_head"),
    ({"scorer_init": "he"}, "scorer_init"),
    ({"scorer_bn_epsilon": 0.0}, "scorer_bn_epsilon"),
    ({"scorer_bn_momentum": -0.1}, "scorer_bn_momentum"),
])
def test_official_options_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LPSDownsampling2D(**kwargs)


@pytest.mark.parametrize("options", OFFICIAL_OPTIONS[:3], ids=lambda o: o["logits_model"])
def test_gradients_reach_every_official_scorer_weight(rng, options):
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    layer = _lps(train_mode="softmax", tau=2.0, **options)
    layer(x, training=False)
    target = rng.normal(size=(2, 4, 4, 4)).astype("float32")
    weights = layer.scorer.trainable_weights
    grads = gradients(
        lambda: keras.ops.sum((layer(x, training=True) - target) ** 2), weights)
    for w, g in zip(weights, grads, strict=True):
        assert g is not None and np.any(to_numpy(g) != 0), w.path
    # The mean-bias gradient cancels in the softmax, as in PyTorch; the others do not.


@pytest.mark.parametrize("options", OFFICIAL_OPTIONS, ids=lambda o: o["logits_model"])
def test_shift_law_with_official_options(rng, options):
    x = rng.normal(size=(3, 12, 12, 4)).astype("float32")
    layer = _lps(return_probs=True, **options)
    y, probs = layer(x, training=False)
    index = np.argmax(to_numpy(probs), 1)
    for shift in SHIFTS[::5]:
        y_s = to_numpy(layer(np.roll(x, shift, (1, 2)), training=False)[0])
        assert np.array_equal(y_s, expected_after_shift(y, index, shift, 2))
