"""Issue 13: empty images, `probs` of another batch, NumPy and non-finite arguments.

Each case used to fail with a raw TensorFlow shape error deep inside the layer (or was
silently accepted); now it raises one ValueError that names the layer or argument and says
what to do.
"""

import json

import keras
import numpy as np
import pytest

from lps_keras.layers import (
    DDAC2D,
    APSDownsampling2D,
    BlurPool2D,
    CircularPad2D,
    InvariantGlobalAveragePooling2D,
    LowPassFilter2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
)

SPATIAL_LAYERS = {
    "aps": APSDownsampling2D,
    "lps": lambda: LPSDownsampling2D(hidden_channels=2),
    "blurpool": BlurPool2D,
    "lowpass": LowPassFilter2D,
    "ddac": lambda: DDAC2D(groups=1),
    "circular_pad": CircularPad2D,
    "pool": InvariantGlobalAveragePooling2D,
}
EMPTY_SHAPES = [(1, 0, 0, 3), (2, 0, 4, 3), (2, 4, 0, 3)]


def _assert_empty_message(info, layer_name, shape):
    message = str(info.value)
    assert f"{layer_name} got an empty input of shape {shape}" in message
    assert "height and width must be at least 1" in message


# ----------------------------------------------------------------------- empty images


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("key", sorted(SPATIAL_LAYERS))
def test_empty_image_is_rejected_eagerly(key, shape):
    layer = SPATIAL_LAYERS[key]()
    with pytest.raises(ValueError) as info:
        layer(np.zeros(shape, "float32"))
    _assert_empty_message(info, type(layer).__name__, shape)


@pytest.mark.parametrize("key", sorted(SPATIAL_LAYERS))
def test_empty_image_is_rejected_symbolically(key):
    layer = SPATIAL_LAYERS[key]()
    with pytest.raises(ValueError) as info:
        layer(keras.Input((0, 4, 3), batch_size=2))
    _assert_empty_message(info, type(layer).__name__, (2, 0, 4, 3))


@pytest.mark.parametrize("key", sorted(SPATIAL_LAYERS))
def test_empty_image_is_rejected_after_build(key):
    layer = SPATIAL_LAYERS[key]()
    layer(np.zeros((1, 4, 4, 3), "float32"))
    with pytest.raises(ValueError) as info:
        layer(np.zeros((1, 0, 4, 3), "float32"))
    _assert_empty_message(info, type(layer).__name__, (1, 0, 4, 3))


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
def test_upsampling_of_empty_image_is_rejected(shape):
    # It used to return a tensor with a wrong batch size: (1, 0, 0, 3) -> (4, 0, 0, 3).
    with pytest.raises(ValueError) as info:
        PolyphaseUpsampling2D()(np.zeros(shape, "float32"), np.ones((shape[0], 4), "float32"))
    _assert_empty_message(info, "PolyphaseUpsampling2D", shape)


@pytest.mark.parametrize("kwargs", [
    {"norm": "l2"}, {"norm": "linf"},
    {"logits_model": "conv"}, {"logits_model": "attention"}, {"logits_model": "graph"},
    {"logits_model": "perceptron"},
], ids=str)
@pytest.mark.parametrize("training", [False, True])
def test_empty_batch_is_still_fine(kwargs, training):
    # Keras refuses the eager max of an empty tensor ("Cannot compute the max of an empty
    # tensor"); the selections pass `initial` so a batch of 0 goes through.
    layer_cls = APSDownsampling2D if "norm" in kwargs else LPSDownsampling2D
    y, probs = layer_cls(return_probs=True, **kwargs)(np.zeros((0, 8, 8, 3), "float32"),
                                                      training=training)
    assert tuple(y.shape) == (0, 4, 4, 3) and tuple(probs.shape) == (0, 4)


# ------------------------------------------------------------- probs of another batch


def _batch_message(name):
    return (rf"{name} got `probs` with batch size 3 for `inputs` with batch size 2 .*"
            r"pass the `probs` the paired downsampler returned for this same batch")


def test_upsampling_probs_of_another_batch_eager():
    with pytest.raises(ValueError, match=_batch_message("PolyphaseUpsampling2D")):
        PolyphaseUpsampling2D()(np.zeros((2, 4, 4, 3), "float32"), np.ones((3, 4), "float32"))


def test_upsampling_probs_of_another_batch_symbolic():
    with pytest.raises(ValueError, match=_batch_message("PolyphaseUpsampling2D")):
        PolyphaseUpsampling2D()(keras.Input((4, 4, 3), batch_size=2),
                                keras.Input((4,), batch_size=3))


@pytest.mark.parametrize("layer_cls", [APSDownsampling2D, LPSDownsampling2D])
def test_downsampling_probs_of_another_batch(layer_cls):
    with pytest.raises(ValueError, match=_batch_message(layer_cls.__name__)):
        layer_cls()(np.zeros((2, 4, 4, 3), "float32"), probs=np.ones((3, 4), "float32"))


def test_probs_with_unknown_batch_still_work():
    up = PolyphaseUpsampling2D()
    z = up(keras.Input((4, 4, 3)), keras.Input((4,)))
    assert tuple(z.shape) == (None, 8, 8, 3)


# ------------------------------------------------------------------ numeric arguments
# Every numeric layer argument accepts Python and NumPy ints (stored as int, so configs
# stay JSON) and rejects floats, bools and non-finite numbers with a message naming it.

ACCEPTED = [
    (APSDownsampling2D, "stride", np.int64(2)),
    (APSDownsampling2D, "stride", np.int32(3)),
    (LPSDownsampling2D, "stride", np.int64(2)),
    (LPSDownsampling2D, "hidden_channels", np.int64(4)),
    (LPSDownsampling2D, "seed", np.int64(7)),
    (LPSDownsampling2D, "tau", np.float32(0.5)),
    (LPSDownsampling2D, "tau", np.int64(2)),
    (PolyphaseUpsampling2D, "stride", np.int64(2)),
    (BlurPool2D, "stride", np.int64(2)),
    (BlurPool2D, "filter_size", np.int64(3)),
    (LowPassFilter2D, "filter_size", np.int64(5)),
    (DDAC2D, "kernel_size", np.int64(3)),
    (DDAC2D, "groups", np.int64(2)),
    (CircularPad2D, "padding", np.int64(1)),
    (CircularPad2D, "padding", (np.int64(1), 2)),
]

REJECTED = [
    (cls, "stride", value, "`stride` must be an int >= 2")
    for cls in (APSDownsampling2D, LPSDownsampling2D, PolyphaseUpsampling2D, BlurPool2D)
    for value in (2.0, np.float64(2.0), float("nan"), float("inf"), True)
] + [
    (LPSDownsampling2D, "tau", value, "`tau` must be a positive number")
    for value in (float("nan"), float("inf"), float("-inf"), np.float32("nan"), 0, True)
] + [
    (LPSDownsampling2D, "hidden_channels", value, "`hidden_channels` must be None or a "
     "positive int") for value in (4.0, float("nan"), True, 0)
] + [
    (LPSDownsampling2D, "seed", value, "`seed` must be None or an int")
    for value in (7.0, float("nan"), "7")
] + [
    (cls, "filter_size", value, "`filter_size` must be an int from 1 to 7")
    for cls in (LowPassFilter2D, BlurPool2D)
    for value in (3.0, np.float64(3.0), float("nan"), float("inf"), True, 0, 8)
] + [
    (DDAC2D, name, value, f"`{name}` must be a positive int")
    for name in ("kernel_size", "groups") for value in (3.0, float("nan"), True, 0)
] + [
    (CircularPad2D, "padding", value, "`padding`")
    for value in (True, 1.0, float("nan"), -1, (1, 2.0), ((1, 1), (0, True)))
]


def _id(case):
    return f"{case[0].__name__}-{case[1]}-{case[2]!r}"


@pytest.mark.parametrize("case", ACCEPTED, ids=_id)
def test_numpy_numbers_are_accepted(case):
    layer_cls, name, value = case
    layer = layer_cls(**{name: value})
    config = layer.get_config()
    json.dumps(config)  # NumPy scalars would not serialise
    stored = config[name]
    if name == "padding":
        assert all(type(v) is int for pair in stored for v in pair)
    elif name == "tau":
        assert type(stored) is float and stored == float(value)
    else:
        assert type(stored) is int and stored == int(value)


@pytest.mark.parametrize("case", REJECTED, ids=_id)
def test_bad_numbers_are_rejected_naming_the_argument(case):
    layer_cls, name, value, message = case
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
        layer_cls(**{name: value})
    assert repr(value) in str(info.value)
