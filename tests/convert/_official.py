"""Shared helpers of the official-checkpoint tests (numpy + lzma only, no torch)."""

import lzma
import os
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
