"""Official checkpoints converted to lps_keras reproduce the official outputs.

The expected outputs were computed by the papers' PyTorch code (tests/fixtures/official);
these tests need numpy and lzma only. Tolerance: 1e-5 relative to the largest expected
value (the measured differences are printed with `-s`).
"""

import numpy as np
import pytest

from lps_keras.convert import weights as weights_mod
from lps_keras.convert.official import checkpoint_kind, convert_checkpoint
from lps_keras.convert.torch_checkpoint import load_torch_checkpoint
from lps_keras.convert.weights import ConversionError
from lps_keras.layers import APSDownsampling2D, LPSDownsampling2D
from tests.convert._official import (
    APS_CKPT,
    LPS_CKPT,
    TV_CKPT,
    decompress,
    differences,
    load_npz,
    log_softmax,
    nhwc,
    official_dir,  # noqa: F401 (fixture)
)

RTOL = 1e-5


def _check(got, want, label):
    max_abs, rel_to_max, rel_elem = differences(got, want)
    print(f"\n{label}: max abs {max_abs:.3e}, max abs / max|expected| {rel_to_max:.3e}, "
          f"max elementwise rel {rel_elem:.3e}")
    assert rel_to_max <= RTOL, (label, max_abs, rel_to_max)


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


@pytest.mark.parametrize("inp,out", [("input", "output"), ("input_shifted", "output_shifted")])
def test_aps_resnet20_matches_official(official_dir, inp, out):  # noqa: F811
    data = load_npz("aps_resnet20_cifar10_circular_f3_eval.npz")
    model = convert_checkpoint(decompress(APS_CKPT, official_dir))
    aps = [layer for layer in model.layers if isinstance(layer, APSDownsampling2D)]
    assert len(aps) == 4 and all(a.score_unfiltered for a in aps)
    _check(np.asarray(model(nhwc(data[inp]), training=False)), data[out],
           f"APS ResNet-20 logits ({inp})")


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
