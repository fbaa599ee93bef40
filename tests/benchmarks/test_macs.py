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


def test_counts_transposed_convs_and_skips_pooling_and_polyphase_upsampling():
    inputs = keras.Input((8, 8, 6))
    x = keras.layers.MaxPooling2D(2)(inputs)  # not counted (no multiplications)
    x = keras.layers.Conv2DTranspose(5, 2, strides=2)(x)  # 4*4*6 inputs x 2*2*5
    total, per_type = count_macs(keras.Model(inputs, x), (8, 8, 6))
    assert per_type == {"Conv2DBackpropInput": 4 * 4 * 6 * 2 * 2 * 5}
    # The same count when the transposed conv overlaps (3x3 kernel, stride 2, "same").
    y = keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same")(inputs)
    assert count_macs(keras.Model(inputs, y), (8, 8, 6))[0] == 8 * 8 * 6 * 3 * 3 * 5

    from lps_keras.layers import APSDownsampling2D, PolyphaseUpsampling2D

    down, probs = APSDownsampling2D(2, return_probs=True)(inputs)
    up = PolyphaseUpsampling2D(2)(down, probs)
    # The upsampler's zero-filling adds nothing to the downsampler's own count.
    assert (count_macs(keras.Model(inputs, up), (8, 8, 6))[0]
            == count_macs(keras.Model(inputs, down), (8, 8, 6))[0])


def test_unet_macs_count_every_conv():
    from benchmarks.model_cases import UNET_VARIANTS, _unet

    build = _unet(16, (4, 8, 16))
    macs = {mode: count_macs(build(mode), (16, 16, 1))[1] for mode in UNET_VARIANTS}
    base = macs["strided"]
    # Encoder: inc 1->4->4 at 16x16; down1 4->8->8 at 8x8; down2 8->16->16 at 4x4.
    encoder = 256 * 9 * (1 * 4 + 4 * 4) + 64 * 9 * (4 * 8 + 8 * 8) + 16 * 9 * (8 * 16 + 16 * 16)
    # Decoder: up1 16->8 transposed (4x4 inputs, 2x2), conv 16->8->8 at 8x8; up2 8->4
    # transposed (8x8 inputs), conv 8->4->4 at 16x16; outc 4->1 at 16x16.
    decoder = 64 * 9 * (16 * 8 + 8 * 8) + 256 * 9 * (8 * 4 + 4 * 4) + 256 * 4
    assert base == {"Conv2D": encoder + decoder,
                    "Conv2DBackpropInput": 16 * 16 * 4 * 8 + 64 * 8 * 4 * 4}
    # The polyphase U-Nets replace each transposed conv by a 2x2 conv at full resolution.
    assert "Conv2DBackpropInput" not in macs["aps"]
    assert macs["aps"]["Conv2D"] == base["Conv2D"] + 64 * 4 * 16 * 8 + 256 * 4 * 8 * 4
    assert sum(macs["lps"].values()) > sum(macs["aps"].values())
    # The LPF U-Net's lowpass3 blurs run as average pools (elementwise work, not counted):
    # its convs are the baseline's.
    assert macs["blurpool"] == base
