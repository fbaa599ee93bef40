"""The converter loads the layout of the APS repo's other CIFAR-10 ResNets (resnet18_aps,
resnet50_aps, resnet56_aps; filter size 3, circular padding).

The fixtures (tests/fixtures/official/aps_structure_*) are STRUCTURE-ONLY: built by the
official APS model functions, saved as the APS training script saves them, every weight
zero except the fixed blur buffers `filt` (see aps_structures.json and the README). They
check the mapping (strict: every tensor used, every Keras weight assigned), the official
parameter counts and the architecture the converter builds; numerical parity is covered by
the random-weight ResNet-20 fixture of test_official_networks.py. numpy + lzma only.
"""

import json
import os

import numpy as np
import pytest

from lps_keras.convert.official import checkpoint_kind, convert_checkpoint_with_map
from lps_keras.layers import APSDownsampling2D, LowPassFilter2D
from tests.convert._official import FIXTURES, load_decompressed, stage_blocks

with open(os.path.join(FIXTURES, "aps_structures.json")) as _f:
    META = json.load(_f)["fixtures"]

# fixture stem -> (depth, blocks per stage, bottleneck, official parameter count)
APS = {
    "aps_structure_resnet18_aps_cifar10_circular_f3": (18, [2, 2, 2, 2], False, 11_173_962),
    "aps_structure_resnet50_aps_cifar10_circular_f3": (50, [3, 4, 6, 3], True, 23_520_842),
    "aps_structure_resnet56_aps_cifar10_circular_f3": (56, [9, 9, 9], False, 855_770),
}


def test_every_aps_structure_fixture_is_recorded():
    assert set(META) == set(APS)
    for name in META:
        assert os.path.exists(os.path.join(FIXTURES, META[name]["checkpoint"]))


@pytest.mark.parametrize("name", sorted(APS))
def test_aps_layout_converts_strictly(name, tmp_path):
    depth, blocks, bottleneck, count = APS[name]
    meta = META[name]
    assert meta["num_parameters"] == count
    assert meta["args"]["filter_size"] == 3 and meta["args"]["conv_pad_type"] == "circular"
    ckpt = load_decompressed(name + ".pt", tmp_path)
    assert checkpoint_kind(ckpt) == "aps_resnet"
    state = ckpt["model"]
    assert len(state) == meta["num_state_tensors"]
    # strict (the default): a missing or unused tensor raises; the map covers every tensor
    model, tensor_map = convert_checkpoint_with_map(ckpt)
    assert set(tensor_map) == set(state)
    assert {v.path for v in model.weights} <= set(tensor_map.values())
    assert model.input.shape == (None, 32, 32, 3)
    assert model.output.shape == (None, 10)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == count
    assert stage_blocks(model) == blocks
    names = [layer.name for layer in model.layers]
    assert ("stage1_block1_3_conv" in names) == bottleneck

    # CIFAR stem: one 3x3 conv, stride 1, circular padding, no max-pool
    conv = model.get_layer("stem_conv")
    assert conv.kernel_size == (3, 3) and conv.strides == (1, 1)
    assert type(model.get_layer("stem_conv_pad")).__name__ == "CircularPad2D"
    assert not [n for n in names if n.startswith("stem_pool")]
    conv_pads = [layer for layer in model.layers if layer.name.endswith("_conv_pad")]
    assert conv_pads and {type(p).__name__ for p in conv_pads} == {"CircularPad2D"}

    # APS in the first block of every stage but the first, main branch and shortcut
    aps = {d.name: d for d in model.layers if isinstance(d, APSDownsampling2D)}
    stages = range(2, len(blocks) + 1)
    assert sorted(aps) == sorted([f"stage{s}_block1_down" for s in stages]
                                 + [f"stage{s}_block1_short_down" for s in stages])
    for d in aps.values():
        assert d.norm == "l2" and d.score_unfiltered, d.name
        assert isinstance(d.antialias_layer, LowPassFilter2D), d.name
        assert d.antialias_layer.filter_size == 3, d.name
        assert d.antialias_layer.padding_mode == "circular", d.name
    # the downsampler sits before the stride-moved conv: conv2 (basic) / conv3 (bottleneck)
    after = "stage2_block1_3_conv" if bottleneck else "stage2_block1_2_conv"
    assert model.get_layer(after).strides == (1, 1)
    assert _source(model, after) == "stage2_block1_down"


def _source(model, name):
    """The layer feeding `name`, looking through padding layers."""
    layer = model.get_layer(name)
    while True:
        (parent,) = layer._inbound_nodes[0].parent_nodes
        layer = parent.operation
        if not layer.name.endswith("_pad"):
            return layer.name


def test_aps_resnet56_layout_runs(tmp_path):
    model, _ = convert_checkpoint_with_map(
        load_decompressed("aps_structure_resnet56_aps_cifar10_circular_f3.pt", tmp_path))
    y = np.asarray(model(np.ones((1, 32, 32, 3), np.float32), training=False))
    assert y.shape == (1, 10) and np.isfinite(y).all()
