"""The APS repository's U-Nets (APS, baseline, LPF) converted with copied weights reproduce
the official outputs (tests/fixtures/official/unet*, made by
`tools/make_official_fixtures.py --only unets`); numpy + lzma only, no torch.

Tolerance: 1e-5 of the largest expected |output| (the measured differences are printed
with `-s`).
"""

import os

import keras
import numpy as np
import pytest

from lps_keras.convert.__main__ import main as cli_main
from lps_keras.convert.official import checkpoint_kind, convert_checkpoint_with_map
from lps_keras.convert.torch_checkpoint import load_torch_checkpoint
from lps_keras.convert.weights import ConversionError
from lps_keras.layers import APSDownsampling2D, BlurPool2D, CircularPad2D, LowPassFilter2D
from tests.convert._official import decompress, differences, load_npz, nhwc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RTOL = 1e-5

# fixture -> (variant, padding, levels, in, out, blur size or None)
CASES = {
    "unet4_aps_circular_f1": ("aps", "circular", 4, 1, 1, None),
    "unet4_aps_circular_f3": ("aps", "circular", 4, 1, 1, 3),
    "unet4_aps_circular_f3_32x64": ("aps", "circular", 4, 1, 1, 3),
    "unet4_aps_zeros_f3_in2_out3": ("aps", "zeros", 4, 2, 3, 3),
    "unet3_aps_circular_f1": ("aps", "circular", 3, 1, 1, None),
    "unet4_baseline_circular": ("baseline", "circular", 4, 1, 1, None),
    "unet4_baseline_zeros": ("baseline", "zeros", 4, 1, 1, None),
    "unet4_lpf_circular_f3": ("lpf", "circular", 4, 1, 1, 3),
    "unet4_lpf_zeros_f3": ("lpf", "zeros", 4, 1, 1, 3),
}
MRI = "unet4_aps_circular_f3_mri.pth.tar"
CIRCULAR_APS = [n for n, c in CASES.items() if c[0] == "aps" and c[1] == "circular"]


def _check(got, want, label):
    max_abs, rel_to_max, _ = differences(got, want)
    print(f"\n{label}: max abs {max_abs:.3e}, max abs / max|expected| {rel_to_max:.3e}")
    assert rel_to_max <= RTOL, (label, max_abs, rel_to_max)


def _run(model, x_nchw):
    return np.asarray(model(nhwc(x_nchw), training=False)).transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Converts each U-Net fixture once per test module (per xdist worker)."""
    directory = tmp_path_factory.mktemp("unets")
    cache = {}

    def get(name):
        if name not in cache:
            state = load_torch_checkpoint(decompress(name + ".pt", directory))
            cache[name] = (state, *convert_checkpoint_with_map(state))
        return cache[name]

    return get


def test_every_unet_fixture_is_tested():
    found = {f[:-len("_eval.npz")] for f in os.listdir(
        os.path.join(ROOT, "tests", "fixtures", "official"))
        if f.startswith("unet") and f.endswith("_eval.npz")}
    assert found == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unet_matches_official(converted, name):
    """Outputs (and, for circular APS, the official output of a shifted input and exact
    circular-shift equivariance of ours), strict conversion, structure read from the file
    (one test per fixture: the conversion is the slow part)."""
    state, model, tensor_map = converted(name)
    data = load_npz(name + "_eval.npz")
    _check(_run(model, data["input"]), data["output"], name)
    if "input_shifted" in data:
        _check(_run(model, data["input_shifted"]), data["output_shifted"], name + " shifted")
    _check_structure(name, state, model, tensor_map)
    if name in CIRCULAR_APS:
        _check_equivariance(name, model, data["input"])


def _check_structure(name, state, model, tensor_map):
    variant, padding, levels, c_in, c_out, blur = CASES[name]
    assert checkpoint_kind(state) == "aps_unet"
    assert set(tensor_map) == set(state)  # every tensor placed or consumed with a reason
    assert {w.path for w in model.weights} <= set(tensor_map.values())
    assert model.input_shape[-1] == c_in and model.output_shape[-1] == c_out
    names = {layer.name for layer in model.layers}
    assert f"down{levels}_down" in names or variant == "baseline"
    assert f"down{levels + 1}_conv_1_conv" not in names and f"up{levels}_concat" in names
    aps = [layer for layer in model.layers if isinstance(layer, APSDownsampling2D)]
    blurpools = [layer for layer in model.layers if isinstance(layer, BlurPool2D)]
    assert len(aps) == (levels if variant == "aps" else 0)
    assert len(blurpools) == (levels if variant == "lpf" else 0)
    for layer in aps:
        assert layer.norm == "l2" and not layer.score_unfiltered
        assert (layer.antialias_layer is None) == (blur is None)
    # The blur after each upsampler (APS-U / LPF), with the official padding.
    up_blurs = [model.get_layer(f"up{k}_blur") for k in range(1, levels + 1)
                if f"up{k}_blur" in names]
    assert len(up_blurs) == (levels if blur else 0)
    blur_padding = "reflect" if (variant, padding) == ("lpf", "zeros") else padding
    for layer in up_blurs + blurpools:
        assert isinstance(layer, LowPassFilter2D) and layer.filter_size == blur
        assert layer.padding_mode == blur_padding
    if variant == "aps":  # the 2x2 conv after ApsUp is padded circularly in every network
        for k in range(1, levels + 1):
            assert isinstance(model.get_layer(f"up{k}_up_conv_pad"), CircularPad2D)


def _check_equivariance(name, model, x):
    y = _run(model, x)
    for shift in [(1, 0), (0, 1), (5, 3), (-7, 11)]:
        ys = _run(model, np.roll(x, shift, axis=(2, 3)))
        diff = float(np.abs(np.roll(y, shift, axis=(2, 3)) - ys).max())
        print(f"\n{name} shift {shift}: max abs equivariance error {diff:.3e}")
        assert diff <= 1e-6 * float(np.abs(y).max()), (shift, diff)


def test_mri_checkpoint_layout_converts_like_the_state_dict(converted, tmp_path):
    ckpt = load_torch_checkpoint(decompress(MRI, tmp_path))
    assert {"epoch", "arch", "state_dict", "lowest_loss", "optimizer"} <= set(ckpt)
    assert all(k.startswith("module.") for k in ckpt["state_dict"])
    assert checkpoint_kind(ckpt) == "aps_unet"
    model, tensor_map = convert_checkpoint_with_map(ckpt)
    assert set(tensor_map) == set(ckpt["state_dict"])
    _, plain, _ = converted("unet4_aps_circular_f3")
    for a, b in zip(model.weights, plain.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # `arch` must agree with the tensors.
    with pytest.raises(ConversionError, match="UNet_3down_aps"):
        convert_checkpoint_with_map(dict(ckpt, arch="UNet_3down_aps"))
    with pytest.raises(ConversionError, match="InstanceNorm|convertible"):
        convert_checkpoint_with_map(dict(ckpt, arch="UNet_4down_InstanceNorm"))


def test_unet_overrides(converted):
    state, _, _ = converted("unet4_aps_circular_f1")
    model, _ = convert_checkpoint_with_map(state, aps_norm="l1", input_shape=(32, 32, 1))
    assert {layer.norm for layer in model.layers if isinstance(layer, APSDownsampling2D)} \
        == {"l1"}
    assert model.input_shape == (None, 32, 32, 1)
    with pytest.raises(ConversionError, match="Unknown override"):
        convert_checkpoint_with_map(state, depth=18)


def test_unet_refusals(converted):
    state, _, _ = converted("unet4_baseline_zeros")
    # bilinear=True: no 'up<k>.up.*' tensors (nn.Upsample has none).
    bilinear = {k: v for k, v in state.items() if not k.startswith(("up1.up.", "up2.up.",
                                                                     "up3.up.", "up4.up."))}
    with pytest.raises(ConversionError, match="bilinear"):
        convert_checkpoint_with_map(bilinear)
    # InstanceNorm2d (affine=False) has no tensors: the BN entries are missing.
    no_bn = {k: v for k, v in state.items() if not k.startswith("inc.double_conv.1.")}
    with pytest.raises(ConversionError, match="InstanceNorm"):
        convert_checkpoint_with_map(no_bn)
    # An extra tensor, a missing one.
    with pytest.raises(ConversionError, match="extra"):
        convert_checkpoint_with_map(dict(state, **{"up1.extra.weight": state["outc.conv.bias"]}))
    missing = {k: v for k, v in state.items() if k != "outc.conv.bias"}
    with pytest.raises(ConversionError, match="outc"):
        convert_checkpoint_with_map(missing)
    # An LPF U-Net with sinc_mode=True: its BlurPools have no 'filt' buffer.
    lpf, _, _ = converted("unet4_lpf_circular_f3")
    with pytest.raises(ConversionError, match="sinc_mode"):
        convert_checkpoint_with_map({k: v for k, v in lpf.items() if not k.endswith("filt")})
    # A blur buffer that is not the binomial filter.
    bad = dict(lpf)
    bad["up2.up.1.filt"] = np.asarray(lpf["up2.up.1.filt"]) * 2
    with pytest.raises(ConversionError, match="binomial"):
        convert_checkpoint_with_map(bad)


def test_cli_converts_the_mri_checkpoint(tmp_path, capsys):
    # In process (tests/convert/test_convert_cli.py runs the module in a subprocess).
    ckpt = decompress(MRI, tmp_path)
    out = tmp_path / "unet.keras"
    assert cli_main(["--checkpoint", ckpt, "--output", str(out),
                     "--override", "aps_norm=l2"]) == 0
    assert "wrote" in capsys.readouterr().out
    model = keras.saving.load_model(str(out))
    data = load_npz("unet4_aps_circular_f3_eval.npz")
    _check(_run(model, data["input"]), data["output"], "CLI unet4_aps_circular_f3_mri")
