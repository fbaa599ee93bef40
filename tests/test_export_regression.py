"""`export_saved_model(..., task="regression")`: an image-to-image U-Net served as float32
images in, `outputs` out, checked in a fresh Python that never imports lps_keras."""

import json
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from lps_keras.export import (
    METADATA_FILENAME,
    check_export_arguments,
    export_saved_model,
    find_export,
    weights_fingerprint,
)
from lps_keras.models import unet
from lps_keras.models.unet import size_multiple
from lps_keras.training import preflight
from tests.helpers import calibrate_batchnorm, serve_signatures_in_fresh_process, to_numpy

CHANNELS = (4, 8, 16)  # 2 levels: sides must be multiples of 4
SHIFTS = [(1, 0), (0, 3), (3, 5), (-2, 7)]


def _unet(**kwargs):
    keras.utils.set_random_seed(0)
    return unet((None, None, 1), channels=CHANNELS, downsampling="aps", **kwargs)


def _images(rng, shape):
    return rng.normal(size=shape).astype("float32")


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """Exports an APS U-Net (APS-U, circular) and serves a set of inputs in a fresh
    process; returns the model, the export and the served outputs and errors."""
    root = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(0)
    model = _unet()
    calibrate_batchnorm(model, _images(rng, (4, 32, 48, 1)))
    path = export_saved_model(model, root / "models", name="mri", task="regression",
                              dataset="fastmri_knee")
    inputs = {"16x16": _images(rng, (2, 16, 16, 1)), "32x48": _images(rng, (3, 32, 48, 1))}
    for shift in SHIFTS:
        inputs[f"roll{shift}"] = np.roll(inputs["32x48"], shift, axis=(1, 2))
    inputs["18x18"] = _images(rng, (1, 18, 18, 1))
    inputs["16x18"] = _images(rng, (1, 16, 18, 1))
    inputs["rgb"] = _images(rng, (1, 16, 16, 3))
    inputs["nan"] = _images(rng, (2, 16, 16, 1))
    inputs["nan"][1, 3, 4, 0] = np.nan
    inputs["inf"] = _images(rng, (1, 16, 16, 1))
    inputs["inf"][0, 0, 0, 0] = -np.inf
    inputs["empty"] = np.zeros((0, 16, 16, 1), np.float32)
    jobs = [{"key": key, "dir": path, "signature": "serving_default", "images": images}
            for key, images in inputs.items()]
    jobs.append({"key": "float-32x48", "dir": path, "signature": "serving_float",
                 "images": inputs["32x48"]})
    outputs, report = serve_signatures_in_fresh_process(jobs, root)
    return {"model": model, "path": path, "inputs": inputs, "outputs": outputs,
            "report": report}


def _served(regression, key):
    assert key not in regression["report"]["errors"], regression["report"]["errors"][key]
    return regression["outputs"][f"{key}::outputs"]


@pytest.mark.parametrize("key", ["16x16", "32x48"])
def test_served_outputs_equal_keras(regression, key):
    x = regression["inputs"][key]
    expected = to_numpy(regression["model"](x, training=False))
    got = _served(regression, key)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.std(expected) > 0.1  # not degenerate
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert set(k for k in regression["outputs"] if k.startswith(f"{key}::")) == {
        f"{key}::outputs"}
    assert regression["report"]["input_specs"][key] == ["float32", [None, None, None, 1]]


def test_serving_float_is_the_same_signature(regression):
    np.testing.assert_array_equal(_served(regression, "float-32x48"),
                                  _served(regression, "32x48"))
    assert regression["report"]["input_specs"]["float-32x48"] == [
        "float32", [None, None, None, 1]]


@pytest.mark.parametrize("key, shape", [("18x18", "[1 18 18 1]"), ("16x18", "[1 16 18 1]"),
                                        ("rgb", "[1 16 16 3]")])
def test_wrong_sizes_are_rejected_with_the_size_rule(regression, key, shape):
    message = regression["report"]["errors"][key]
    assert "`images` must have shape [batch, any, any, 1]" in message
    assert "height and width positive multiples of 4 (the size rule of the model)" in message
    assert shape in message  # the received shape


@pytest.mark.parametrize("key", ["nan", "inf"])
def test_non_finite_images_are_rejected(regression, key):
    assert "`images` contains NaN or inf" in regression["report"]["errors"][key]


def test_empty_batch(regression):
    got = _served(regression, "empty")
    assert got.shape == (0, 16, 16, 1) and got.dtype == np.float32


@pytest.mark.parametrize("shift", SHIFTS)
def test_served_aps_unet_is_exactly_shift_equivariant(regression, shift):
    """The served APS-U U-Net commutes with circular shifts bit for bit (`==`, not just at
    float32 rounding): every op computes each output pixel the same way wherever it is,
    and APS picks the same (shifted) components."""
    base = _served(regression, "32x48")
    rolled = _served(regression, f"roll{shift}")
    np.testing.assert_array_equal(rolled, np.roll(base, shift, axis=(1, 2)))


def test_metadata(regression):
    with open(os.path.join(regression["path"], METADATA_FILENAME)) as f:
        meta = json.load(f)
    assert meta["task"] == "regression" and meta["name"] == "mri" and meta["version"] == 1
    assert meta["num_classes"] is None and meta["class_names"] is None
    assert meta["in_channels"] == 1 and meta["out_channels"] == 1
    assert meta["image_size"] == [None, None]
    assert meta["size_multiple"] == 4
    assert meta["size_rule"] == "height and width positive multiples of 4"
    assert meta["dataset"] == "fastmri_knee"
    assert meta["preprocessing"] == {
        "formula": "(cast(images, float32) / input_scale - mean) / std",
        "input_scale": 1.0, "mean": [0.0], "std": [1.0]}
    assert set(meta["signatures"]) == {"serving_default", "serving_float"}
    for signature in meta["signatures"].values():
        assert signature == {
            "inputs": {"images": {"dtype": "float32", "shape": [None, None, None, 1]}},
            "outputs": {"outputs": {"dtype": "float32", "shape": [None, None, None, 1]}}}
    assert meta["weights_sha256"] == weights_fingerprint(regression["model"])


# ------------------------------------------------------------------------ in this process


def test_size_multiple_is_derived_from_the_unet():
    assert size_multiple(_unet()) == 4
    keras.utils.set_random_seed(0)
    four = unet((None, None, 2), channels=(2, 2, 2, 2, 2), downsampling="maxpool")
    assert size_multiple(four) == 16
    inputs = keras.Input((None, None, 1))
    plain = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    assert size_multiple(plain) is None
    checked = check_export_arguments(four, task="regression")
    assert checked["size_multiple"] == 16 and checked["in_channels"] == 2
    assert checked["mean"] == (0.0, 0.0) and checked["input_scale"] == 1.0
    assert check_export_arguments(plain, task="regression")["size_multiple"] == 1
    assert check_export_arguments(plain, task="regression",
                                  size_multiple=8)["size_multiple"] == 8


def test_normalisation_and_multi_channel_in_process(tmp_path):
    keras.utils.set_random_seed(0)
    model = unet((None, None, 2), out_channels=3, channels=(4, 8), downsampling="lps")
    path = export_saved_model(model, tmp_path, task="regression", mean=(0.5, -1.0),
                              std=2.0, input_scale=10.0)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    x = np.random.default_rng(1).normal(size=(2, 8, 6, 2)).astype("float32")
    got = serve(images=tf.constant(x))["outputs"].numpy()
    expected = to_numpy(model((x / 10.0 - np.float32([0.5, -1.0])) / 2.0, training=False))
    assert got.shape == (2, 8, 6, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    meta = json.load(open(os.path.join(path, METADATA_FILENAME)))
    assert meta["in_channels"] == 2 and meta["out_channels"] == 3
    assert meta["size_rule"] == "height and width positive multiples of 2"


def test_fixed_size_unet(tmp_path):
    keras.utils.set_random_seed(0)
    model = unet((16, 24, 1), channels=CHANNELS, downsampling="maxpool")
    path = export_saved_model(model, tmp_path, task="regression")
    meta = json.load(open(os.path.join(path, METADATA_FILENAME)))
    assert meta["image_size"] == [16, 24] and meta["size_rule"] is None
    serve = tf.saved_model.load(path).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"must have shape \[batch, 16, 24, 1\]"):
        serve(images=tf.zeros((1, 16, 16, 1)))


def test_versioning_and_find_export(tmp_path):
    model = _unet()
    fingerprint = weights_fingerprint(model)
    first = export_saved_model(model, tmp_path, name="u", task="regression")
    assert first.endswith(os.path.join("u", "1"))
    assert find_export(tmp_path, "u", fingerprint) == first
    second = export_saved_model(model, tmp_path, name="u", task="regression")
    assert second.endswith(os.path.join("u", "2"))
    with pytest.raises(FileExistsError):
        export_saved_model(model, tmp_path, name="u", task="regression", version=1)
    assert find_export(tmp_path, "u", fingerprint) == second  # newest first


def test_auto_never_guesses_regression(tmp_path):
    # A one-channel U-Net: auto means segmentation, which needs RGB; the error says what to do.
    with pytest.raises(ValueError, match="pass task='regression'"):
        check_export_arguments(_unet())
    # An RGB U-Net with a rank-4 output still exports as a segmenter under "auto".
    keras.utils.set_random_seed(0)
    rgb = unet((None, None, 3), out_channels=5, channels=CHANNELS, downsampling="aps")
    checked = check_export_arguments(rgb)
    assert checked["task"] == "segmentation" and checked["size_multiple"] == 4
    assert checked["input_scale"] == 255.0


@pytest.mark.parametrize("kwargs, match", [
    ({"class_names": ["a"]}, "`class_names` must be None for task='regression'"),
    ({"mean": (0.0, 0.0, 0.0)}, "None or one finite number"),
    ({"std": -1.0}, "`std` must be positive"),
    ({"size_multiple": 0}, "`size_multiple` must be None or a positive int"),
    ({"size_multiple": True}, "`size_multiple` must be None or a positive int"),
    ({"image_size": (16, 18)}, "not a multiple of size_multiple=4"),
    ({"input_scale": 0}, "`input_scale` must be a positive number"),
])
def test_invalid_regression_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export_saved_model(_unet(), tmp_path / "out", task="regression", **kwargs)
    assert not (tmp_path / "out").exists()


def test_regression_needs_an_image_output():
    inputs = keras.Input((8, 8, 1))
    pooled = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match=r"task='regression' needs rank-4 images"):
        check_export_arguments(pooled, task="regression")


def test_trainer_exports_regression_datasets_as_regression():
    config = types.SimpleNamespace(export=types.SimpleNamespace(dir="/tmp/x", name=None),
                                   name="run", data=types.SimpleNamespace(name="fastmri"))
    info = types.SimpleNamespace(task="regression", mean=(0.0,), std=(1.0,),
                                 class_names=None, num_classes=None)
    arguments = preflight.export_arguments(config, info)
    assert arguments["task"] == "regression" and arguments["class_names"] is None
    del arguments["export_dir"]
    checked = check_export_arguments(_unet(), **arguments)
    assert checked["task"] == "regression" and checked["dataset"] == "fastmri"
    assert checked["mean"] == (0.0,) and checked["std"] == (1.0,)
    # Other datasets keep task="auto".
    info = types.SimpleNamespace(task="classification", mean=(0.5,) * 3, std=(0.25,) * 3,
                                 class_names=("a", "b"), num_classes=2)
    assert "task" not in preflight.export_arguments(config, info)
