"""lps_keras.evaluation in process: units, ranges, raw-pixel protocols, reuse of passes."""

import keras
import numpy as np
import pytest

from lps_keras import metrics
from lps_keras.data import dataset_info
from lps_keras.evaluation import (
    EVAL_MODES,
    LoadedModel,
    default_eval_mode,
    evaluate,
    load_arrays,
    summary,
)


def _constant_classifier(label, num_classes=10):
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(num_classes)])
    bias = np.zeros(num_classes, np.float32)
    bias[label] = 1.0
    model.layers[-1].set_weights([np.zeros((3, num_classes), np.float32), bias])
    return model


def _random_cnn():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(10, 3, padding="same")(x))
    return keras.Model(inputs, x)


def test_dataset_protocols():
    assert {name: dataset_info(name).protocol for name in
            ("imagenet", "imagenette", "image_folder", "cifar10", "synthetic_shapes")} == {
        "imagenet": "imagenet", "imagenette": "imagenet", "image_folder": "imagenet",
        "cifar10": "cifar", "synthetic_shapes": "cifar"}
    assert EVAL_MODES == ("class_accuracy", "shift_consistency", "segmentation")
    assert default_eval_mode("segmentation") == "segmentation"
    assert default_eval_mode("classification") == "shift_consistency"


def test_constant_classifier_numbers_and_reused_passes():
    info = dataset_info("synthetic_shapes")
    model = LoadedModel.from_keras(_constant_classifier(3), info.mean, info.std, name="const")
    lines = []
    result = evaluate(model, "shift_consistency", "synthetic_shapes", num_examples=20,
                      batch_size=8, log=lines.append)
    entry = result["models"]["const"]
    # Every prefix of the synthetic labels is balanced: 2 of 20 images are class 3.
    assert entry["accuracy"] == 10.0
    assert entry["circular_consistency"] == entry["standard_consistency"] == 100.0
    assert set(entry["circular_vs_shift"]) == {"0", "1", "2", "3"}
    assert set(entry["standard_vs_shift"].values()) == {100.0}
    assert result["units"] == "percent (0-100)" and result["protocol"] == "cifar"
    assert result["num_examples"] == 20 and result["max_shift"] == 3
    # One line per pass: accuracy 1, C-Cons 2, S-Cons 2, each curve 1 + 4 sizes; the
    # unshifted pass and the size-0 pass of each curve repeat the accuracy pass.
    assert len(lines) == 15, lines
    assert sum("reused" in line for line in lines) == 4, lines
    assert summary(entry) == ("accuracy 10.00% | circular consistency 100.00% | "
                              "standard consistency 100.00%")


def test_protocols_run_on_raw_pixels_and_batch_size_does_not_matter():
    info = dataset_info("synthetic_shapes")
    net = _random_cnn()
    model = LoadedModel.from_keras(net, info.mean, info.std, name="cnn")
    results = [evaluate(model, "shift_consistency", "synthetic_shapes", num_examples=40,
                        batch_size=bs, curves=False)["models"]["cnn"] for bs in (7, 40)]
    assert results[0] == results[1]
    images, labels = load_arrays("synthetic_shapes", "test", num_examples=40)
    assert images.max() > 200  # raw 0-255 pixels

    def raw(x):  # normalise inside the model: a standard shift fills with black
        return keras.ops.convert_to_numpy(net((x / 255.0 - info.mean) / info.std))

    assert results[0]["standard_consistency"] == metrics.shift_consistency(
        raw, images, mode="standard", seed=0)
    assert results[0]["accuracy"] == metrics.accuracy(raw, images, labels)
    assert 0.0 <= results[0]["standard_consistency"] <= 100.0


def test_segmentation_miou_is_a_percentage_with_named_classes():
    info = dataset_info("synthetic_shapes_seg")
    net = keras.Sequential([keras.Input((None, None, 3)),
                            keras.layers.Conv2D(info.num_classes, 1)])
    bias = np.zeros(info.num_classes, np.float32)
    bias[0] = 1.0  # always "background"
    net.layers[-1].set_weights([np.zeros((1, 1, 3, info.num_classes), np.float32), bias])
    model = LoadedModel.from_keras(net, info.mean, info.std, name="bg")
    result = evaluate(model, "segmentation", "synthetic_shapes_seg", num_examples=6,
                      batch_size=4, max_shift=8)
    entry = result["models"]["bg"]
    _, masks = load_arrays("synthetic_shapes_seg", "test", num_examples=6)
    background = 100.0 * np.mean(masks == 0)  # predicted everywhere; right on background
    present = set(np.unique(masks).tolist()) | {0}
    assert entry["per_class_iou"]["background"] == pytest.approx(background)
    assert set(entry["per_class_iou"]) == set(info.class_names)
    for k, name in enumerate(info.class_names):
        assert entry["per_class_iou"][name] == (
            pytest.approx(background) if k == 0 else 0.0 if k in present else None)
    assert entry["mean_iou"] == pytest.approx(background / len(present))
    assert 0.0 <= entry["mean_iou"] <= 100.0
    assert entry["circular_massc"] == entry["standard_massc"] == 100.0
    assert result["max_shift"] == 8 and result["protocol"] is None


def test_mode_must_fit_the_task():
    info = dataset_info("synthetic_shapes")
    model = LoadedModel.from_keras(_constant_classifier(0), info.mean, info.std)
    with pytest.raises(ValueError, match="does not fit synthetic_shapes"):
        evaluate(model, "segmentation", "synthetic_shapes", num_examples=4)
    with pytest.raises(ValueError, match="eval_mode"):
        evaluate(model, "accuracy", "synthetic_shapes", num_examples=4)
