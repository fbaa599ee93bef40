"""What may change when a run resumes (`lps_keras.training.resume`)."""

import pytest

from lps_keras.errors import RunDirectoryError
from lps_keras.training.resume import check_resume, config_changes

STORED = {"seed": 0, "model": {"downsampling": "lps", "lps": {"tau": 1.0}},
          "data": {"name": "cifar10", "image_size": 0, "max_shift": 3},
          "train": {"learning_rate": 0.1, "epochs": 10, "optimizer": "sgd"}}


def _with(path, value):
    import copy

    config = copy.deepcopy(STORED)
    *parents, key = path.split(".")
    target = config
    for part in parents:
        target = target[part]
    target[key] = value
    return config


def test_no_change_is_no_change():
    assert config_changes(STORED, STORED) == {}
    assert check_resume(STORED, STORED, "/run/config.json") == {}


@pytest.mark.parametrize("path, value", [
    ("model.downsampling", "aps"), ("model.lps.tau", 0.5), ("data.name", "imagenet"),
    ("data.image_size", 64), ("train.optimizer", "adam"),
])
def test_model_defining_changes_are_refused_by_name(path, value):
    with pytest.raises(RunDirectoryError, match=rf"config\.{path}: .* -> {value!r}"):
        check_resume(STORED, _with(path, value), "/run/config.json")


@pytest.mark.parametrize("path, value", [
    ("seed", 1), ("train.learning_rate", 0.01), ("train.epochs", 20), ("data.max_shift", 0),
])
def test_other_changes_are_allowed_and_listed(path, value):
    assert check_resume(STORED, _with(path, value), "/run/config.json") == {
        path: (_get(STORED, path), value)}


def test_a_new_or_removed_key_counts_as_a_change():
    current = _with("train.new_setting", 3)
    assert config_changes(STORED, current) == {"train.new_setting": (None, 3)}


def _get(config, path):
    for part in path.split("."):
        config = config[part]
    return config


def test_a_model_setting_added_by_a_newer_release_is_only_a_warning():
    current = _with("model.init", "keras")
    assert check_resume(STORED, current, "/run/config.json") == {"model.init": (None, "keras")}
