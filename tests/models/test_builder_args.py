"""The `keras.applications` arguments of the ResNet builders: `include_top`, `pooling`,
`classifier_activation`, `input_tensor` and `weights` (local files only)."""

import keras
import numpy as np
import pytest

from lps_keras.models import resnet, resnet18, resnet20
from tests.helpers import to_numpy

SIZE = 16  # ResNet-20 (CIFAR stem) has two downsamplers: sides divisible by 4 are exact
SHIFTS = [(1, 0), (0, 3), (5, -7), (8, 8), (-2, 13)]


def _images(batch=3, seed=0):
    return np.random.default_rng(seed).random((batch, SIZE, SIZE, 3)).astype("float32")


def _net(**kwargs):
    kwargs.setdefault("num_classes", 10)
    return resnet20(input_shape=(SIZE, SIZE, 3), stem="cifar", **kwargs)


# --- include_top / pooling ------------------------------------------------------------


def test_include_top_false_returns_the_feature_map():
    model = _net(include_top=False)
    assert model.output_shape == (None, SIZE // 4, SIZE // 4, 64)
    assert not any(layer.name == "logits" for layer in model.layers)


@pytest.mark.parametrize("pooling, reduce", [("avg", np.mean), ("max", np.max)])
def test_pooling_reduces_the_feature_map(pooling, reduce):
    features = _net(include_top=False)
    pooled = _net(include_top=False, pooling=pooling)
    assert pooled.output_shape == (None, 64)
    pooled.set_weights(features.get_weights())
    x = _images()
    expected = reduce(to_numpy(features(x, training=False)), axis=(1, 2))
    np.testing.assert_allclose(to_numpy(pooled(x, training=False)), expected,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("downsampling", ["aps", "lps"])
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_pooled_features_are_exactly_shift_invariant(downsampling, pooling):
    model = _net(include_top=False, pooling=pooling, downsampling=downsampling)
    x = _images()
    y = to_numpy(model(x, training=False))
    assert np.ptp(y) > 0
    for shift in SHIFTS:
        shifted = to_numpy(model(np.roll(x, shift, (1, 2)), training=False))
        assert np.array_equal(shifted, y), shift  # bit for bit, not up to rounding


def test_pooling_arguments_are_checked():
    with pytest.raises(ValueError, match="pooling"):
        _net(include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="include_top=False"):
        _net(pooling="max")  # the head pools by the average
    assert _net(pooling="avg").output_shape == (None, 10)  # the head's own pooling


# --- classifier_activation --------------------------------------------------------------


def test_logits_by_default_and_softmax_on_request():
    logits_model = _net(downsampling="aps")
    probs_model = _net(downsampling="aps", classifier_activation="softmax")
    probs_model.set_weights(logits_model.get_weights())
    x = _images()
    logits = to_numpy(logits_model(x, training=False))
    probs = to_numpy(probs_model(x, training=False))
    assert (logits < 0).any()  # logits, not probabilities
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, to_numpy(keras.ops.softmax(logits)), rtol=1e-5,
                               atol=1e-7)
    assert probs_model.layers[-1].name == "predictions"
    assert _net(classifier_activation=None).layers[-1].name == "logits"


def test_classifier_activation_is_checked():
    with pytest.raises(ValueError):
        _net(classifier_activation="no_such_activation")
    with pytest.raises(ValueError, match="include_top=True"):
        _net(include_top=False, classifier_activation="softmax")


# --- input_tensor -----------------------------------------------------------------------


def test_input_tensor_builds_on_a_given_tensor():
    images = keras.Input((SIZE, SIZE, 3), dtype="uint8", name="raw")
    scaled = keras.layers.Rescaling(1 / 255.0)(images)
    model = _net(input_tensor=scaled, downsampling="lps")
    assert model.inputs[0] is images  # the model starts at the source input
    assert model.output_shape == (None, 10)
    x = (_images() * 255).astype("uint8")
    y = to_numpy(model(x, training=False))
    assert y.shape == (3, 10)
    assert np.array_equal(to_numpy(model(np.roll(x, (3, 5), (1, 2)), training=False)), y)


def test_input_tensor_is_checked():
    with pytest.raises(TypeError, match="Keras tensor"):
        _net(input_tensor=np.zeros((1, SIZE, SIZE, 3), "float32"))
    with pytest.raises(ValueError, match="contradicts"):
        resnet20(input_shape=(32, 32, 3), stem="cifar",
                 input_tensor=keras.Input((SIZE, SIZE, 3)))
    # input_shape may be left out: it comes from the tensor
    model = resnet20(num_classes=4, stem="cifar", input_tensor=keras.Input((SIZE, SIZE, 3)))
    assert model.input_shape == (None, SIZE, SIZE, 3)


# --- weights ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_weights_round_trip(tmp_path, suffix):
    source = _net(downsampling="lps", antialias="lowpass3")
    path = tmp_path / f"converted{suffix}"
    if suffix == ".keras":
        source.save(path)
    else:
        source.save_weights(path)
    loaded = _net(downsampling="lps", antialias="lowpass3", weights=str(path))
    for a, b in zip(source.weights, loaded.weights, strict=True):
        assert np.array_equal(to_numpy(a), to_numpy(b)), a.path
    x = _images()
    assert np.array_equal(to_numpy(loaded(x, training=False)),
                          to_numpy(source(x, training=False)))
    # a path-like works too, and a shortcut passes `weights` through
    assert resnet(20, num_classes=10, input_shape=(SIZE, SIZE, 3), stem="cifar",
                  downsampling="lps", antialias="lowpass3", weights=path).name


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        _net(weights=str(tmp_path / "absent.weights.h5"))


def test_weights_must_be_a_local_file(tmp_path):
    with pytest.raises(ValueError, match="nothing is downloaded"):
        _net(weights="imagenet")
    with pytest.raises(TypeError, match="nothing is downloaded"):
        _net(weights=True)
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match="Cannot read"):
        _net(weights=str(broken))


@pytest.mark.parametrize("other", [
    {"num_classes": 5},                              # another head
    {"downsampling": "aps"},                         # no LPS scorers: extra arrays in file
    {"include_top": False},                          # no classifier
    {"logits_channels": 16},                         # other scorer widths
])
def test_weights_of_another_architecture_are_refused(tmp_path, other):
    source = _net(downsampling="lps")
    path = str(tmp_path / "lps.weights.h5")
    source.save_weights(path)
    with pytest.raises(ValueError, match="does not fit"):
        _net(**{"downsampling": "lps", **other}, weights=path)


def test_shortcuts_take_the_arguments():
    model = resnet18(input_shape=(32, 32, 3), stem="cifar", include_top=False, pooling="max",
                     downsampling="aps")
    assert model.output_shape == (None, 512)


def test_deeplab_weights_round_trip(tmp_path):
    from lps_keras.models import deeplabv3plus

    kwargs = dict(num_classes=3, input_shape=(32, 32, 3), aspp_filters=8, decoder_filters=8,
                  low_level_filters=8, logits_channels=8)
    source = deeplabv3plus("resnet18", **kwargs)
    path = tmp_path / "seg.weights.h5"
    source.save_weights(path)
    loaded = deeplabv3plus("resnet18", weights=path, **kwargs)
    x = np.random.default_rng(2).random((1, 32, 32, 3)).astype("float32")
    assert np.array_equal(to_numpy(loaded(x, training=False)),
                          to_numpy(source(x, training=False)))
    with pytest.raises(ValueError, match="does not fit"):
        deeplabv3plus("resnet18", weights=path, **{**kwargs, "num_classes": 4})
