"""Official checkpoints converted to lps_keras reproduce the official outputs.

The expected outputs were computed by the papers' PyTorch code (tests/fixtures/official);
these tests need numpy and lzma only. Tolerance: 1e-5 relative to the largest expected
value (the measured differences are printed with `-s`).
"""

import numpy as np
import pytest

from lps_keras.convert import weights as weights_mod
from lps_keras.convert.official import (
    checkpoint_kind,
    convert_checkpoint,
    convert_checkpoint_with_map,
)
from lps_keras.convert.torch_checkpoint import load_torch_checkpoint
from lps_keras.convert.weights import ConversionError
from lps_keras.layers import DDAC2D, APSDownsampling2D, LowPassFilter2D, LPSDownsampling2D
from tests.convert._official import (
    APS_CKPT,
    LPS_CKPT,
    LPS_DEEPLAB_CKPT,
    LPS_IMAGENET_DDAC,
    LPS_IMAGENET_R50,
    TV_CKPT,
    decompress,
    differences,
    load_npz,
    log_softmax,
    nhwc,
    official_dir,  # noqa: F401 (fixture)
)

RTOL = 1e-5


def _check(got, want, label, rtol=RTOL):
    max_abs, rel_to_max, rel_elem = differences(got, want)
    print(f"\n{label}: max abs {max_abs:.3e}, max abs / max|expected| {rel_to_max:.3e}, "
          f"max elementwise rel {rel_elem:.3e}")
    assert rel_to_max <= rtol, (label, max_abs, rel_to_max)


# The official float32 logits of the DDAC network are themselves 1.07e-5 of max|logits|
# from the official float64 ones (meta.float32_vs_float64_rel; ours: 2.9e-6 from float64,
# 9.3e-6 from float32), so against float32 the DDAC network gets twice the tolerance and
# both networks are held to RTOL against the float64 reference.
FLOAT32_RTOL = {LPS_IMAGENET_DDAC: 2 * RTOL, LPS_IMAGENET_R50: RTOL}


@pytest.mark.parametrize("inp,out", [("input", "output"), ("input_shifted", "output_shifted")])
def test_lps_resnet18_matches_official(official_dir, inp, out):  # noqa: F811
    path = decompress(LPS_CKPT, official_dir)
    data = load_npz("lps_resnet18_cifar10_circular_eval.npz")
    model = convert_checkpoint(path)
    logits = np.asarray(model(nhwc(data[inp]), training=False))
    if inp == "input":
        _check(logits, data["logits"], "LPS ResNet-18 logits")
    _check(log_softmax(logits), data[out], f"LPS ResNet-18 log_softmax ({inp})")
    # The log_softmax option gives the official output directly.
    model_ls = convert_checkpoint(path, log_softmax=True)
    _check(np.asarray(model_ls(nhwc(data[inp]), training=False)), data[out],
           f"LPS ResNet-18 log_softmax=True ({inp})")


def test_lps_resnet18_settings_come_from_checkpoint(official_dir):  # noqa: F811
    model = convert_checkpoint(decompress(LPS_CKPT, official_dir))
    downs = [layer for layer in model.layers if isinstance(layer, LPSDownsampling2D)]
    assert [d.scorer.conv1.filters for d in downs] == [16, 32, 64]
    for d in downs:
        assert d.scorer_head == "official" and d.train_mode == "softmax"
        assert d.inference_mode == "argmax" and not d.score_unfiltered
        assert float(d.tau.numpy()) == 0.5
    assert model.output.shape == (None, 10)


@pytest.mark.parametrize("name", [LPS_IMAGENET_DDAC, LPS_IMAGENET_R50])
def test_lps_imagenet_resnets_match_official(official_dir, name):  # noqa: F811
    # ImageNet stem (LPS, circular pad + 2x2 max-pool, LPS), antialias inside every LPS
    # (DDAC with the official joint softmax / LowPassFilter), Bottleneck, zero padding with
    # circular scorers, filters and max-pool pad.
    data = load_npz(f"{name}_eval.npz")
    model = convert_checkpoint(decompress(name + ".ckpt", official_dir))
    x = nhwc(data["input"])
    logits = np.asarray(model(x, training=False))
    _check(logits, data["logits_float64"], f"{name} logits vs official float64")
    rtol = FLOAT32_RTOL[name]
    _check(logits, data["logits"], f"{name} logits", rtol)
    _check(log_softmax(logits), data["output"], f"{name} log_softmax", rtol)
    shifted = np.asarray(model(np.roll(x, (5, 3), axis=(1, 2)), training=False))
    _check(log_softmax(shifted), data["output_shifted"], f"{name} log_softmax (shifted)", rtol)


def test_lps_imagenet_settings_come_from_checkpoint(official_dir):  # noqa: F811
    ddac = convert_checkpoint(decompress(LPS_IMAGENET_DDAC + ".ckpt", official_dir))
    downs = {d.name: d for d in ddac.layers if isinstance(d, LPSDownsampling2D)}
    assert downs["stem_down1"].antialias_layer is None  # maxpool_no_antialias
    for name in ("stem_down2", "stage2_block1_down", "stage4_block1_down"):
        aa = downs[name].antialias_layer
        assert isinstance(aa, DDAC2D) and aa.groups == 8 and aa.softmax == "joint"
        assert aa.epsilon == 1e-5 and aa.momentum == 0.9 and aa.padding_mode == "circular"
    assert [downs[n].scorer.conv1.filters for n in ("stem_down1", "stem_down2",
            "stage2_block1_down", "stage3_block1_down", "stage4_block1_down")] \
        == [8, 8, 16, 32, 64]
    r50 = convert_checkpoint(decompress(LPS_IMAGENET_R50 + ".ckpt", official_dir))
    downs = [d for d in r50.layers if isinstance(d, LPSDownsampling2D)]
    assert all(d.padding_mode == "circular" for d in downs)  # LPS_pad, not padding_mode
    assert all(isinstance(d.antialias_layer, LowPassFilter2D)
               for d in downs if d.name != "stem_down1")
    assert type(r50.get_layer("stem_pool_pad")).__name__ == "CircularPad2D"
    assert type(r50.get_layer("stem_conv_pad")).__name__ == "ZeroPadding2D"
    assert r50.output.shape == (None, 1000)


def test_lps_imagenet_ddac_tensor_missing_is_an_error(official_dir):  # noqa: F811
    ckpt = load_torch_checkpoint(decompress(LPS_IMAGENET_DDAC + ".ckpt", official_dir))
    del ckpt["state_dict"]["core.layer3.0.downsample.0._antialias_layer.bn.running_var"]
    with pytest.raises(ConversionError,
                       match="stage3_block1_short_down_antialias/kernel_norm/moving_variance"):
        convert_checkpoint(ckpt)


def test_lps_deeplabv3plus_matches_official(official_dir):  # noqa: F811
    # Official head: ASPP on the stride-32 map with rates 6/12/18 (third branch zero-padded),
    # one decoder conv on [low-level, ASPP], LPU without antialias. The fixture stores
    # sampled outputs (see its README).
    data = load_npz("lps_deeplabv3plus_resnet18_unpool_eval.npz")
    model, tensor_map = convert_checkpoint_with_map(decompress(LPS_DEEPLAB_CKPT, official_dir))
    assert [layer.name for layer in model.layers if layer.name.startswith("decoder_conv")] \
        == ["decoder_conv1_conv_pad", "decoder_conv1_conv", "decoder_conv1_bn",
            "decoder_conv1_relu"]
    assert type(model.get_layer("aspp_rate18_conv_pad")).__name__ == "ZeroPadding2D"
    assert type(model.get_layer("aspp_rate12_conv_pad")).__name__ == "CircularPad2D"
    assert tensor_map["model.classifier.classifier.0.weight"] == "decoder_conv1_conv/kernel"
    y = np.asarray(model(nhwc(data["input"].astype(np.float32)), training=False))
    y = y.transpose(0, 3, 1, 2)
    n, c, h, w = y.shape
    _check(y.reshape(n, c, h * w)[:, :, data["output_pixel_idx"]], data["output_pixel_val"],
           "LPS DeepLabV3+ sampled pixels")
    c0 = h // 2 - 8
    _check(y[:, :, c0:c0 + 16, c0:c0 + 16], data["output_center_crop"],
           "LPS DeepLabV3+ centre crop")
    _check(y.astype(np.float64).sum(axis=(2, 3)), data["output_sum"],
           "LPS DeepLabV3+ per-class sums")
    assert (y.argmax(1) == data["output_argmax"]).all()


@pytest.mark.parametrize("inp,out", [("input", "output"), ("input_shifted", "output_shifted")])
def test_aps_resnet20_matches_official(official_dir, inp, out):  # noqa: F811
    data = load_npz("aps_resnet20_cifar10_circular_f3_eval.npz")
    model = convert_checkpoint(decompress(APS_CKPT, official_dir))
    aps = [layer for layer in model.layers if isinstance(layer, APSDownsampling2D)]
    assert len(aps) == 4 and all(a.score_unfiltered for a in aps)
    _check(np.asarray(model(nhwc(data[inp]), training=False)), data[out],
           f"APS ResNet-20 logits ({inp})")


def test_aps_criterion_override_reaches_every_downsampler(official_dir):  # noqa: F811
    # The APS checkpoint does not store its criterion (the official default is l2).
    model = convert_checkpoint(decompress(APS_CKPT, official_dir), aps_norm="l1_min")
    aps = [layer for layer in model.layers if isinstance(layer, APSDownsampling2D)]
    assert aps and all(a.norm == "l1_min" for a in aps)


def test_aps_repo_lpf_models_convert_with_the_blurpool_override(official_dir):  # noqa: F811
    # The APS repo's *_lpf models save exactly the tensors of its APS models.
    model = convert_checkpoint(decompress(APS_CKPT, official_dir), downsampling="blurpool")
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "BlurPool2D" in kinds and "APSDownsampling2D" not in kinds


def test_torchvision_resnet18_matches_official(official_dir):  # noqa: F811
    data = load_npz("torchvision_resnet18_eval.npz")
    model = convert_checkpoint(decompress(TV_CKPT, official_dir))
    _check(np.asarray(model(nhwc(data["input"]), training=False)), data["output"],
           "torchvision ResNet-18 logits")


@pytest.mark.parametrize("downsampling", ["blurpool", "aps"])
def test_torchvision_weights_load_into_shift_invariant_variants(official_dir, downsampling):  # noqa: F811
    # BlurPool / APS variants have the same tensors (the stride moves to a downsampler
    # without weights), so every tensor is placed; their outputs differ from the strided
    # model by design.
    path = decompress(TV_CKPT, official_dir)
    model = convert_checkpoint(path, downsampling=downsampling, input_shape=(64, 64, 3))
    strided = convert_checkpoint(path, input_shape=(64, 64, 3))
    w = {v.path: v.numpy() for v in strided.weights}
    for v in model.weights:
        np.testing.assert_array_equal(v.numpy(), w[v.path])


def test_lps_variant_of_torchvision_needs_allow_missing(official_dir):  # noqa: F811
    path = decompress(TV_CKPT, official_dir)
    with pytest.raises(ConversionError, match="no checkpoint tensor"):
        convert_checkpoint(path, downsampling="lps", input_shape=(64, 64, 3))
    model = convert_checkpoint(path, downsampling="lps", input_shape=(64, 64, 3),
                               allow_missing=True)
    assert model.output.shape == (None, 1000)


def test_unused_tensor_is_an_error(official_dir):  # noqa: F811
    ckpt = load_torch_checkpoint(decompress(APS_CKPT, official_dir))
    ckpt["model"]["extra.weight"] = np.zeros((3,), np.float32)
    with pytest.raises(ConversionError, match="extra.weight"):
        convert_checkpoint(ckpt)


def test_missing_tensor_is_an_error(official_dir):  # noqa: F811
    ckpt = load_torch_checkpoint(decompress(APS_CKPT, official_dir))
    del ckpt["model"]["layer2.0.bn1.running_var"]
    with pytest.raises(ConversionError, match="stage2_block1_1_bn/moving_variance"):
        convert_checkpoint(ckpt)


def test_kinds(official_dir):  # noqa: F811
    assert checkpoint_kind(load_torch_checkpoint(decompress(APS_CKPT, official_dir))) \
        == "aps_resnet"
    assert checkpoint_kind(load_torch_checkpoint(decompress(TV_CKPT, official_dir))) \
        == "torchvision_resnet"
    with pytest.raises(ConversionError, match="Unrecognised"):
        checkpoint_kind({"foo": 1})


def test_phase_permutation_is_an_involution():
    perm = np.array(weights_mod.APS_TO_OURS)
    assert (perm[perm] == np.arange(4)).all()


def _partial_keywords(obj):
    return obj.state[2] if isinstance(obj.state, tuple) and obj.state[2] else obj.kwargs


def test_unconvertible_antialias_padding_is_refused(official_dir):  # noqa: F811
    ckpt = load_torch_checkpoint(decompress(LPS_IMAGENET_R50 + ".ckpt", official_dir))
    antialias = _partial_keywords(ckpt["hyper_parameters"]["pooling_layer"])["antialias_layer"]
    _partial_keywords(antialias)["padding_mode"] = "replicate"
    with pytest.raises(ConversionError, match="replicate"):
        convert_checkpoint(ckpt)
