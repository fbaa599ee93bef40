import keras
import numpy as np
import pytest

from lps_keras.layers import PolyphaseUpsampling2D
from lps_keras.models import deeplabv3plus
from tests.helpers import (
    calibrate_batchnorm,
    inference,
    natural_images,
    serve_in_fresh_process,
    to_numpy,
)

SMALL = {"num_classes": 5, "input_shape": (64, 64, 3), "logits_channels": 8,
         "aspp_filters": 16, "decoder_filters": 16, "low_level_filters": 8}
SHIFTS = [(3, 5), (-8, 1), (7, -7), (32, -17), (1, 0)]


def _equivariance_error(model, x):
    batch = np.concatenate([x] + [np.roll(x, s, (1, 2)) for s in SHIFTS])
    out = inference(model)(batch).reshape((len(SHIFTS) + 1, len(x)) + tuple(x.shape[1:3])
                                          + (-1,))
    errors = [np.abs(out[i + 1] - np.roll(out[0], s, (1, 2))).max()
              for i, s in enumerate(SHIFTS)]
    return max(errors), out[0]


@pytest.mark.parametrize("output_stride", [16, 32])
def test_lps_lpu_is_shift_equivariant(float64, output_stride):
    model = deeplabv3plus("resnet18", output_stride=output_stride, downsampling="lps",
                          upsampling="lpu", **SMALL)
    x = np.random.default_rng(output_stride).normal(size=(2, 64, 64, 3))
    error, y = _equivariance_error(model, x)
    assert y.shape == (2, 64, 64, 5) and np.ptp(y) > 0.1
    assert error < 1e-4


def test_bilinear_upsampling_is_not_equivariant(float64):
    model = deeplabv3plus("resnet18", downsampling="lps", upsampling="bilinear", **SMALL)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3))
    error, _ = _equivariance_error(model, x)
    assert error > 1e-2


@pytest.mark.parametrize("output_stride, dilations, final", [
    (32, {1}, 2), (16, {1, 2}, 4), (8, {1, 2, 4}, 8)])
def test_output_stride_really_dilates(output_stride, dilations, final):
    model = deeplabv3plus("resnet18", output_stride=output_stride, **SMALL)
    seen = {layer.dilation_rate[0] for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith("stage")}
    assert seen == dilations
    assert model.get_layer("stage4_block2_out").output.shape[1] == final
    rates = {layer.dilation_rate[0] for layer in model.layers
             if layer.name.startswith("aspp_rate") and isinstance(layer, keras.layers.Conv2D)}
    assert rates == {6 * 16 // output_stride, 12 * 16 // output_stride,
                     18 * 16 // output_stride}


def test_every_upsampling_is_lpu_with_matching_selection():
    model = deeplabv3plus("resnet18", output_stride=16, **SMALL)
    ups = [layer for layer in model.layers if isinstance(layer, PolyphaseUpsampling2D)]
    # 16 -> 8 -> 4 in the decoder, 4 -> 2 -> 1 at the end.
    assert [u.name for u in ups] == ["decoder_up_lpu16", "decoder_up_lpu8",
                                     "final_up_lpu4", "final_up_lpu2"]
    assert not any(isinstance(layer, keras.layers.UpSampling2D) for layer in model.layers)


@pytest.mark.parametrize("kwargs, match", [
    ({"backbone": "vgg16"}, "backbone"),
    ({"upsampling": "nearest"}, "upsampling"),
    ({"output_stride": 4}, "output_stride"),
    ({"downsampling": "strided", "upsampling": "lpu"}, "lpu"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        deeplabv3plus(**{**SMALL, **kwargs})


def test_lps_segmenter_round_trips(tmp_path):
    model = deeplabv3plus("resnet18", **SMALL)
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")
    expected = to_numpy(model(x, training=False))
    model.save(tmp_path / "segmenter.keras")
    reloaded = keras.saving.load_model(tmp_path / "segmenter.keras")
    np.testing.assert_array_equal(to_numpy(reloaded(x, training=False)), expected)


@pytest.mark.tf_only  # SavedModel export
def test_lps_segmenter_exports(tmp_path):
    model = deeplabv3plus("resnet18", **SMALL)
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")
    expected = to_numpy(model(x, training=False))
    model.export(str(tmp_path / "segmenter"), verbose=False)
    (served,) = serve_in_fresh_process(tmp_path / "segmenter", x, tmp_path)
    np.testing.assert_allclose(served, expected, atol=1e-4)


@pytest.mark.parametrize("downsampling", ["lps", "aps"])
def test_float32_segmentation_is_bitwise_equivariant(downsampling):
    # Every selection follows the shift and the ASPP image pool accumulates in float64, so
    # the logits of a shifted image are the shifted logits, compared with `==`.
    model = deeplabv3plus("resnet18", downsampling=downsampling, upsampling="lpu",
                          output_stride=16, **SMALL)
    x = natural_images(4, 64, 3, seed=2)
    calibrate_batchnorm(model, x)
    shifts = [(1, 0), (0, 1), (3, 5), (-7, 2), (16, 9), (31, -13)]
    batch = np.concatenate([x] + [np.roll(x, s, (1, 2)) for s in shifts])
    out = inference(model)(batch).reshape((len(shifts) + 1,) + x.shape[:3] + (5,))
    assert out.dtype == np.float32 and np.ptp(out[0]) > 1e-3
    for n, shift in enumerate(shifts, start=1):
        assert np.array_equal(out[n], np.roll(out[0], shift, (1, 2))), shift


def test_official_head_options():
    # The LPS paper's DeepLabV3+: ASPP rates of output stride 16 on the stride-32 map, third
    # dilated branch zero-padded, one decoder conv.
    model = deeplabv3plus("resnet18", num_classes=3, input_shape=(64, 64, 3), output_stride=32,
                          aspp_filters=8, decoder_filters=8, logits_channels=8,
                          aspp_rates=(6, 12, 18), aspp_padding_modes=("circular", "circular",
                                                                      "zeros"),
                          decoder_convs=1)
    names = [layer.name for layer in model.layers]
    assert "decoder_conv2_conv" not in names and "decoder_conv1_conv" in names
    assert model.get_layer("aspp_rate18_conv").dilation_rate == (18, 18)
    assert type(model.get_layer("aspp_rate18_conv_pad")).__name__ == "ZeroPadding2D"
    assert type(model.get_layer("aspp_rate6_conv_pad")).__name__ == "CircularPad2D"
    with pytest.raises(ValueError, match="aspp_rates"):
        deeplabv3plus("resnet18", input_shape=(64, 64, 3), aspp_rates=(6, 6, 18))
    with pytest.raises(ValueError, match="decoder_convs"):
        deeplabv3plus("resnet18", input_shape=(64, 64, 3), decoder_convs=3)
