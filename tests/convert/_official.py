"""Shared helpers of the official-checkpoint tests (numpy + lzma only, no torch)."""

import lzma
import os
import re
import shutil

import numpy as np
import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "official")

LPS_CKPT = "lps_resnet18_cifar10_circular.ckpt"
APS_CKPT = "aps_resnet20_cifar10_circular_f3.pt"
TV_CKPT = "torchvision_resnet18.pth"
LPS_IMAGENET_DDAC = "lps_resnet18_imagenet_ddac3_circular"
LPS_IMAGENET_R50 = "lps_resnet50_imagenet_lpf3_zero"
LPS_DEEPLAB_CKPT = "lps_deeplabv3plus_resnet18_unpool.ckpt"


def decompress(name, directory):
    """Decompresses `<FIXTURES>/<name>.xz` into `directory`; returns the path."""
    path = os.path.join(str(directory), name)
    if not os.path.exists(path):
        with lzma.open(os.path.join(FIXTURES, name + ".xz")) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return path


def load_decompressed(name, directory):
    """The checkpoint `<FIXTURES>/<name>.xz`, read with `load_torch_checkpoint`; the
    decompressed file (structure fixtures unpack to up to 188 MB of zeros) is removed."""
    from lps_keras.convert.torch_checkpoint import load_torch_checkpoint

    path = decompress(name, directory)
    try:
        return load_torch_checkpoint(path)
    finally:
        os.remove(path)


def stage_blocks(model):
    """Blocks per stage of a built ResNet, from its `stage<s>_block<b>_` layer names (-1 for
    a stage whose block numbers are not 1..n)."""
    found = {}
    for layer in model.layers:
        m = re.match(r"stage(\d)_block(\d+)_", layer.name)
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return [max(found[s]) if sorted(found[s]) == list(range(1, max(found[s]) + 1)) else -1
            for s in sorted(found)]


def load_npz(name):
    with np.load(os.path.join(FIXTURES, name)) as data:
        return {key: data[key] for key in data.files}


def nhwc(x):
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


def log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def differences(got, want):
    """(max abs difference, max abs difference / max |want|, max elementwise relative)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.abs(got - want)
    return (float(diff.max()), float(diff.max() / np.abs(want).max()),
            float((diff / np.maximum(np.abs(want), 1e-30)).max()))


@pytest.fixture(scope="session")
def official_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("official_ckpts")
