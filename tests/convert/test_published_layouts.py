"""The converter loads the layout of every published LPS ImageNet checkpoint and of the
torchvision ResNet-50/101 weights.

The fixtures (tests/fixtures/official/published_*) are STRUCTURE-ONLY: built by the
official code with the train.py settings of each published run, every weight zero, but
the real Lightning layout and `hyper_parameters` (see published_structures.json and the
README). They check the mapping (strict: every tensor used, every Keras weight assigned)
and the architecture the converter builds; numerical parity is covered by the
random-weight fixtures of test_official_networks.py. numpy + lzma only, no torch.
"""

import json
import os

import numpy as np
import pytest

from lps_keras.convert.official import convert_checkpoint, convert_checkpoint_with_map
from lps_keras.layers import DDAC2D, APSDownsampling2D, LowPassFilter2D, LPSDownsampling2D
from tests.convert._official import FIXTURES, load_decompressed, stage_blocks

with open(os.path.join(FIXTURES, "published_structures.json")) as _f:
    META = json.load(_f)["fixtures"]

BLOCKS = {18: [2, 2, 2, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
# fixture stem -> (depth, antialias class or None, antialias size, conv padding)
PUBLISHED = {
    "published_resnet18_lps_circular_basic": (18, None, None, "circular"),
    "published_resnet18_lps_ddac3_circular_basic": (18, DDAC2D, 3, "circular"),
    "published_resnet18_lps_lpf2_circular_basic": (18, LowPassFilter2D, 2, "circular"),
    "published_resnet50_lps_lpf3_zero_randomresized": (50, LowPassFilter2D, 3, "zeros"),
    "published_resnet101_lps_ddac3_zero_randomresized": (101, DDAC2D, 3, "zeros"),
    "published_resnet101_lps_lpf3_zero_randomresized": (101, LowPassFilter2D, 3, "zeros"),
}
TORCHVISION = {"published_torchvision_resnet50": (50, 25_557_032),
               "published_torchvision_resnet101": (101, 44_549_160)}
PAD_CLASS = {"circular": "CircularPad2D", "zeros": "ZeroPadding2D"}
LPS_DOWNS = ["stem_down1", "stem_down2", "stage2_block1_down", "stage3_block1_down",
             "stage4_block1_down"]


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _partial_keywords(obj):
    return obj.state[2] if isinstance(obj.state, tuple) and obj.state[2] else obj.kwargs


def test_every_published_fixture_is_recorded():
    assert set(META) == set(PUBLISHED) | set(TORCHVISION)
    for name in META:
        assert os.path.exists(os.path.join(FIXTURES, META[name]["checkpoint"]))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_lps_layout_converts_strictly(name, tmp_path):
    depth, aa_cls, aa_size, conv_pad = PUBLISHED[name]
    meta = META[name]
    ckpt = load_decompressed(name + ".ckpt", tmp_path)
    state = ckpt["state_dict"]
    # strict (the default): a missing or unused tensor raises; the map covers every tensor
    model, tensor_map = convert_checkpoint_with_map(ckpt)
    assert set(tensor_map) == set(state)
    assert {v.path for v in model.weights} <= set(tensor_map.values())
    assert model.output.shape == (None, 1000)
    assert _trainable(model) == meta["num_parameters"]  # the official model's count
    assert stage_blocks(model) == BLOCKS[depth]
    assert ("stage1_block1_3_conv" in [layer.name for layer in model.layers]) == (depth >= 50)

    # ImageNet stem: 7x7 conv without stride, LPS, circular-padded 2x2 max-pool, LPS
    conv = model.get_layer("stem_conv")
    assert conv.kernel_size == (7, 7) and conv.strides == (1, 1)
    assert type(model.get_layer("stem_conv_pad")).__name__ == PAD_CLASS[conv_pad]
    assert type(model.get_layer("stem_pool_pad")).__name__ == "CircularPad2D"  # maxpool_zpad off
    assert type(model.get_layer("stem_pool")).__name__ == "MaxPooling2D"
    conv_pads = [layer for layer in model.layers if layer.name.endswith("_conv_pad")]
    assert conv_pads and {type(p).__name__ for p in conv_pads} == {PAD_CLASS[conv_pad]}

    # LPS layers: circular scorers (LPS_pad) whatever the conv padding, official widths
    downs = {d.name: d for d in model.layers if isinstance(d, LPSDownsampling2D)}
    assert sorted(downs) == sorted(LPS_DOWNS)
    assert [downs[n].scorer.conv1.filters for n in LPS_DOWNS] == [8, 8, 16, 32, 64]
    assert all(d.padding_mode == "circular" for d in downs.values())
    assert downs["stem_down1"].antialias_layer is None  # maxpool_no_antialias
    shorts = [d for d in model.layers if isinstance(d, APSDownsampling2D)
              and d.name.endswith("_short_down")]
    # stages 2-4 downsample the shortcut with the main branch's selection
    assert [d.name for d in shorts] == [f"stage{s}_block1_short_down" for s in (2, 3, 4)]
    hp = _partial_keywords(ckpt["hyper_parameters"]["pooling_layer"])
    official_aa = hp["antialias_layer"]
    assert (official_aa is None) == (aa_cls is None)
    for d in [downs[n] for n in LPS_DOWNS[1:]] + shorts:
        aa = d.antialias_layer
        if aa_cls is None:
            assert aa is None, d.name
            continue
        kw = _partial_keywords(official_aa)
        assert isinstance(aa, aa_cls), d.name
        assert aa.padding_mode == "circular"  # antialias_padding_mode default, also for _zero
        if aa_cls is DDAC2D:
            assert aa.kernel_size == aa_size == kw["kernel_size"]
            assert aa.groups == kw["group"] == 8 and aa.softmax == "joint"
        else:
            assert aa.filter_size == aa_size == kw["filter_size"]


@pytest.mark.parametrize("name", ["published_resnet18_lps_lpf2_circular_basic",
                                  "published_resnet50_lps_lpf3_zero_randomresized"])
def test_published_lps_layout_runs(name, tmp_path):
    model = convert_checkpoint(load_decompressed(name + ".ckpt", tmp_path))
    y = np.asarray(model(np.ones((1, 64, 64, 3), np.float32), training=False))
    assert y.shape == (1, 1000) and np.isfinite(y).all()


@pytest.mark.parametrize("downsampling", ["strided", "blurpool", "aps"])
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_resnet_layout_converts_strictly(name, downsampling, tmp_path):
    depth, count = TORCHVISION[name]
    assert META[name]["num_parameters"] == count
    ckpt = load_decompressed(name + ".pth", tmp_path)
    model = convert_checkpoint(ckpt, downsampling=downsampling, input_shape=(64, 64, 3))
    assert model.output.shape == (None, 1000)
    assert _trainable(model) == count
    assert stage_blocks(model) == BLOCKS[depth]
    if downsampling == "strided":
        assert not [d for d in model.layers if isinstance(d, APSDownsampling2D)]
    elif downsampling == "aps":
        assert [d for d in model.layers if isinstance(d, APSDownsampling2D)]
