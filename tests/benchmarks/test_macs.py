import keras
import pytest

from benchmarks.macs import count_macs
from lps_keras.layers import LPSDownsampling2D


def test_counts_conv_depthwise_and_dense_from_shapes():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)  # 16*16*8 outputs x 3*3*3
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 8*8*8 x 3*3
    x = keras.layers.Conv2D(4, 1, groups=2)(x)  # 8*8*4 outputs x 1*1*(8/2)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)  # 4*10
    total, per_type = count_macs(keras.Model(inputs, outputs), (16, 16, 3))
    assert per_type["Conv2D"] == 16 * 16 * 8 * 27 + 8 * 8 * 4 * 4
    assert per_type["DepthwiseConv2dNative"] == 8 * 8 * 8 * 9
    assert per_type["MatMul"] == 40
    assert total == sum(per_type.values())
    assert count_macs(keras.Model(inputs, outputs), (16, 16, 3), batch_size=3)[0] == 3 * total


def test_counts_the_scorer_nested_inside_lps():
    inputs = keras.Input((8, 8, 6))
    outputs = LPSDownsampling2D(2, "conv", hidden_channels=5)(inputs)
    total, _ = count_macs(keras.Model(inputs, outputs), (8, 8, 6))
    # 4 components of 4x4: conv 3x3 6->5; the one-filter circular conv 5->1 before the
    # global mean runs as a per-pixel product with the kernel summed over its taps,
    # 5 MACs per pixel.
    assert total == 4 * 16 * 5 * 9 * 6 + 4 * 16 * 5


def test_unknown_shapes_are_refused_with_a_hint():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="fully defined input shape"):
        count_macs(model, (None, 8, 3))
