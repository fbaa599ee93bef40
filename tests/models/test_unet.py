import itertools

import keras
import numpy as np
import pytest

from lps_keras.layers import (
    APSDownsampling2D,
    BlurPool2D,
    LowPassFilter2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
)
from lps_keras.models import SamplingSpec, UNetEncoder, resnet, unet
from tests.helpers import calibrate_batchnorm, inference, natural_images, to_numpy

SHIFTS = list(itertools.product(range(-3, 4), repeat=2))  # every shift in [-3, 3]^2


def _shifted_outputs(model, x):
    """Outputs for `x` and for every shift of `x` in SHIFTS, one batch per shift."""
    forward = inference(model)
    return forward(x), [forward(np.roll(x, s, (1, 2))) for s in SHIFTS]


def _max_equivariance_error(model, x):
    base, shifted = _shifted_outputs(model, x)
    return max(np.abs(y - np.roll(base, s, (1, 2))).max()
               for s, y in zip(SHIFTS, shifted, strict=True))


@pytest.mark.parametrize("downsampling, channels, antialias, size, batch", [
    ("aps", (8, 16, 32, 64, 128), None, 32, 2),  # 4 levels: the official layout
    ("aps", (5, 7, 9, 11), "lowpass3", 24, 1),  # 3 levels, odd widths, batch 1
    ("lps", (8, 16, 32, 64, 128), None, 48, 1),
    ("lps", (3, 5, 7, 9), "lowpass2", 16, 3),
])
def test_polyphase_unet_is_exactly_circular_shift_equivariant(downsampling, channels,
                                                               antialias, size, batch):
    model = unet((None, None, 2), out_channels=3, channels=channels,
                 downsampling=downsampling, antialias=antialias)
    x = natural_images(batch, size, 2, seed=size)
    calibrate_batchnorm(model, x)
    base, shifted = _shifted_outputs(model, x)
    assert base.shape == (batch, size, size, 3) and np.ptp(base) > 0.1
    for s, y in zip(SHIFTS, shifted, strict=True):
        np.testing.assert_array_equal(y, np.roll(base, s, (1, 2)), err_msg=f"shift {s}")


def test_rectangular_inputs_are_equivariant_too():
    model = unet((None, None, 1), channels=(4, 8, 16, 32), downsampling="aps")
    x = np.random.default_rng(0).normal(size=(2, 16, 40, 1)).astype("float32")
    forward = inference(model)
    base = forward(x)
    for s in [(5, -11), (-8, 3), (1, 39)]:
        np.testing.assert_array_equal(forward(np.roll(x, s, (1, 2))), np.roll(base, s, (1, 2)))


@pytest.mark.parametrize("downsampling, upsampling, antialias", [
    ("maxpool", "transposed", None),  # the baseline U-Net
    ("blurpool", "transposed", "lowpass3"),  # LPF
    ("aps", "transposed", None),  # adaptive down, fixed-grid up
    ("aps", "bilinear", None),
])
def test_fixed_grid_unets_are_measurably_not_equivariant(downsampling, upsampling, antialias):
    model = unet((None, None, 1), channels=(4, 8, 16, 32), downsampling=downsampling,
                 upsampling=upsampling, antialias=antialias)
    x = natural_images(2, 32, 1, seed=3)
    base = to_numpy(model(x, training=False))
    assert _max_equivariance_error(model, x) > 1e-2 * np.abs(base).max()


def test_zero_padding_breaks_exactness():
    model = unet((None, None, 1), channels=(4, 8, 16, 32), downsampling="aps",
                 padding_mode="zeros")
    x = natural_images(2, 32, 1, seed=4)
    assert _max_equivariance_error(model, x) > 1e-3


@pytest.mark.parametrize("downsampling, upsampling, down_cls, up_cls", [
    ("maxpool", None, keras.layers.MaxPooling2D, keras.layers.Conv2DTranspose),
    ("blurpool", None, BlurPool2D, keras.layers.Conv2DTranspose),
    ("aps", None, APSDownsampling2D, PolyphaseUpsampling2D),
    ("lps", "lpu", LPSDownsampling2D, PolyphaseUpsampling2D),
    ("aps", "aps-u", APSDownsampling2D, PolyphaseUpsampling2D),
    ("lps", "bilinear", LPSDownsampling2D, keras.layers.UpSampling2D),
])
def test_structure_of_each_variant(downsampling, upsampling, down_cls, up_cls):
    model = unet((32, 32, 1), channels=(4, 8, 16, 32, 64), downsampling=downsampling,
                 upsampling=upsampling)
    downs = [layer for layer in model.layers if isinstance(layer, down_cls)
             and layer.name.startswith("down")]
    ups = [model.get_layer(f"up{k}_up") for k in range(1, 5)]
    assert len(downs) == 4 and all(isinstance(u, up_cls) for u in ups)
    # Skips: concatenations at strides 8, 4, 2, 1; the output at the input size.
    for k, side in zip(range(1, 5), (4, 8, 16, 32), strict=True):
        assert model.get_layer(f"up{k}_concat").output.shape[1:3] == (side, side)
    assert model.output.shape == (None, 32, 32, 1)


def test_polyphase_upsamplers_use_the_selection_of_their_encoder_level():
    model = unet((32, 32, 1), channels=(4, 8, 16, 32), downsampling="aps")
    for step, level in zip((1, 2, 3), (3, 2, 1), strict=True):
        up = model.get_layer(f"up{step}_up")
        probs_source = up._inbound_nodes[0].input_tensors[1]._keras_history.operation
        assert probs_source.name == f"down{level}_down"


def test_blur_follows_antialias_and_the_aps_u_blur_sums_to_one():
    model = unet((16, 16, 1), channels=(4, 8, 16), downsampling="aps", antialias="lowpass5")
    blur = model.get_layer("up1_blur")
    assert isinstance(blur, LowPassFilter2D) and blur.filter_size == 5
    # The APS-U code's blur sums to one (it averages the zero-filled phases in): a map
    # placed on one phase keeps a quarter of its mean.
    x = np.random.default_rng(0).uniform(1, 2, size=(1, 8, 8, 4)).astype("float32")
    placed = model.get_layer("up1_up")(x, np.eye(4, dtype="float32")[[2]])
    np.testing.assert_allclose(to_numpy(blur(placed)).mean(), x.mean() / 4, rtol=1e-5)
    plain = unet((16, 16, 1), channels=(4, 8, 16), downsampling="aps")
    assert not any(isinstance(layer, LowPassFilter2D) for layer in plain.layers)


def test_channel_widths_follow_the_official_layout():
    model = unet((32, 32, 1), out_channels=2)
    assert [model.get_layer(f"down{k}_conv_2_conv").filters for k in range(1, 5)] == \
        [128, 256, 512, 1024]
    assert [model.get_layer(f"up{k}_up_conv").filters for k in range(1, 5)] == \
        [512, 256, 128, 64]
    assert [model.get_layer(f"up{k}_conv_2_conv").filters for k in range(1, 5)] == \
        [512, 256, 128, 64]
    bilinear = unet((32, 32, 1), upsampling="bilinear", downsampling="maxpool")
    assert bilinear.get_layer("down4_conv_2_conv").filters == 512
    assert [bilinear.get_layer(f"up{k}_conv_2_conv").filters for k in range(1, 5)] == \
        [256, 128, 64, 64]


@pytest.mark.parametrize("downsampling", ["aps", "lps", "maxpool"])
def test_keras_round_trip(tmp_path, downsampling):
    model = unet((None, None, 1), channels=(4, 8, 16), downsampling=downsampling)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype("float32")
    path = str(tmp_path / "unet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x, training=False)),
                                  to_numpy(model(x, training=False)))


def test_encoder_exposes_features_and_selections_by_stride(tmp_path):
    encoder = UNetEncoder((4, 8, 16, 32), input_shape=(None, None, 1),
                          sampling=SamplingSpec(downsampling="lps"))
    assert sorted(encoder.pyramid_outputs) == [1, 2, 4, 8]
    assert sorted(encoder.probs) == [2, 4, 8]
    assert encoder.probs[8].shape[-1] == 4
    clone = UNetEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    x = np.random.default_rng(1).normal(size=(1, 16, 16, 1)).astype("float32")
    np.testing.assert_array_equal(to_numpy(keras.saving.load_model(path)(x, training=False)),
                                  to_numpy(encoder(x, training=False)))


def test_sampling_spec_and_keywords_agree():
    spec = SamplingSpec(downsampling="aps", antialias="lowpass3", padding_mode="zeros")
    a = unet((16, 16, 1), channels=(4, 8, 16), sampling=spec)
    b = unet((16, 16, 1), channels=(4, 8, 16), downsampling="aps", antialias="lowpass3",
             padding_mode="zeros")
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    with pytest.raises(ValueError, match="either as `sampling` or as keywords"):
        unet((16, 16, 1), channels=(4, 8, 16), sampling=spec, padding_mode="circular",
             downsampling="lps")


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_shape=(30, 32, 1)), r"divisible by 16 \(2\*\*levels\); got 30"),
    (dict(input_shape=(8, 8, 1)), r"divisible by 16 \(2\*\*levels\); got 8"),
    (dict(downsampling="strided"), r"U-Net models take downsampling in \('maxpool'"),
    (dict(downsampling="maxpool", upsampling="polyphase"), "needs the selections"),
    (dict(upsampling="nearest"), "upsampling"),
    (dict(channels=(8,)), "at least two"),
    (dict(channels=(8, 0, 4)), "positive ints"),
    (dict(out_channels=0), "`out_channels` must be a positive int"),
    (dict(up_padding_mode="reflect"), "up_padding_mode"),
    (dict(downsampling="maxpool", antialias="lowpass3"), "needs a downsampler"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        unet(**kwargs)


def test_resnets_refuse_the_unet_baseline():
    with pytest.raises(ValueError, match=r"ResNet models take downsampling in \('strided'"):
        resnet(20, num_classes=10, input_shape=(32, 32, 3), stem="cifar",
               downsampling="maxpool")


def test_residual_unet_adds_its_input_and_stays_exactly_equivariant():
    model = unet((None, None, 2), out_channels=2, channels=(4, 8, 16), downsampling="lps",
                 residual=True)
    plain = keras.Model(model.input, model.get_layer("outc").output)
    x = natural_images(2, 16, 2, seed=7)
    np.testing.assert_allclose(to_numpy(model(x, training=False)),
                               x + to_numpy(plain(x, training=False)), atol=1e-6)
    forward = inference(model)
    base = forward(x)
    for s in [(3, -2), (-5, 7), (1, 1)]:
        np.testing.assert_array_equal(forward(np.roll(x, s, (1, 2))), np.roll(base, s, (1, 2)))
    with pytest.raises(ValueError, match=r"`out_channels` \(1\) must equal the input channels"):
        unet((None, None, 2), out_channels=1, residual=True)
