"""Run names (the default run directory and export name) follow the model configured."""

import pytest

from lps_keras.training.naming import run_name
from tests.test_configs import CONFIGS, load


@pytest.mark.parametrize("name, expected", [
    ("default.py", "synthetic_shapes_resnet20_lps"),
    ("cifar10_resnet18_lps_lowpass3.py", "cifar10_resnet18_lps_lowpass3"),
    ("imagenet_resnet50_lps_ddac3.py", "imagenet_resnet50_lps_ddac3"),
    ("imagenet_resnet101_aps.py", "imagenet_resnet101_aps"),
    ("voc_deeplabv3plus_resnet18_lps.py", "voc_deeplabv3plus_resnet18_lps_lpu"),
    ("synthetic_shapes_seg_deeplab.py", "synthetic_shapes_seg_deeplabv3plus_resnet18_lps_lpu"),
])
def test_shipped_configs_are_named_after_their_model(name, expected):
    assert run_name(load(name)) == expected


@pytest.mark.parametrize("name", CONFIGS)
def test_overriding_the_downsampling_renames_the_run(name):
    config = load(name)
    before = run_name(config)
    other = "aps" if config.model.downsampling == "strided" else "strided"
    config.model.downsampling = other
    assert run_name(config) != before and f"_{other}" in run_name(config)


def test_an_explicit_name_is_kept():
    config = load("default.py")
    config.name = "mine"
    config.model.downsampling = "aps"
    assert run_name(config) == "mine"
