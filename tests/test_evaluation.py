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
    assert EVAL_MODES == ("class_accuracy", "shift_consistency", "segmentation",
                          "reconstruction")
    assert default_eval_mode("segmentation") == "segmentation"
    assert default_eval_mode("classification") == "shift_consistency"
    assert default_eval_mode("regression") == "reconstruction"


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


def _bare_model(path):
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10)], name="bare")
    model.save(path)
    return path


def test_damaged_keras_files_name_the_file(tmp_path):
    import zipfile

    from lps_keras.evaluation.loading import ModelFileError

    data = _bare_model(tmp_path / "good.keras").read_bytes()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(data[: len(data) // 2])
    hollow = tmp_path / "hollow.keras"  # a zip, but not of a Keras model
    with zipfile.ZipFile(hollow, "w") as z:
        z.writestr("notes.txt", "hello")
    for path in (truncated, hollow):
        with pytest.raises(ModelFileError) as info:
            LoadedModel(str(path))
        message = str(info.value)
        assert str(path) in message and "restore it from a backup" in message
        assert "File not found" not in message.split("(")[0]


@pytest.mark.parametrize("content", [b"[1, 2]", b"\xff\xfe{", b""])
def test_damaged_config_json_names_the_file(tmp_path, content):
    from lps_keras.rundir import InvalidJSONError

    run = tmp_path / "run"
    run.mkdir()
    _bare_model(run / "model.keras")
    (run / "config.json").write_bytes(content)
    for path in (run, run / "model.keras"):
        with pytest.raises(InvalidJSONError) as info:
            LoadedModel(str(path))
        message = str(info.value)
        assert str(run / "config.json") in message and "Restore it from a backup" in message


def test_corrupt_image_while_loading_arrays_is_a_corrupt_dataset_error(tmp_path):
    import tensorflow as tf

    from lps_keras.data import CorruptDatasetError

    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            tf.io.write_file(str(folder / "x.png"),
                             tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)))
    bad = tmp_path / "test" / "b" / "y.jpg"
    bad.write_bytes(b"GARBAGE" * 20)
    with pytest.raises(CorruptDatasetError, match="Remove or replace it") as info:
        load_arrays("image_folder", "test", data_dir=str(tmp_path), image_size=8,
                    resize_size=8)
    assert info.value.path == str(bad) and str(bad) in str(info.value)


def test_check_max_shift():
    from lps_keras.evaluation.runner import check_max_shift, evaluated_image_side

    assert evaluated_image_side("synthetic_shapes") == 32
    assert evaluated_image_side("synthetic_shapes", image_size=48) == 48
    assert evaluated_image_side("imagenette") == 224
    assert evaluated_image_side("voc", crop_size=320) == 320
    assert evaluated_image_side("synthetic_shapes_seg") == 64
    check_max_shift(31, "cifar10")
    with pytest.raises(ValueError, match=r"max_shift=32 is not smaller .*\(32x32\)"):
        check_max_shift(32, "cifar10")


def _circular_denoiser():
    """Circular-padded convolutions plus the input: exactly shift-equivariant."""
    from lps_keras.layers import CircularPad2D

    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(CircularPad2D(1)(inputs))
    x = keras.layers.Conv2D(1, 3)(CircularPad2D(1)(x))
    return keras.Model(inputs, keras.layers.Add()([inputs, x]), name="circular")


def _strided_denoiser():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(1, 3, padding="same")(keras.layers.UpSampling2D(2)(x))
    return keras.Model(inputs, keras.layers.Add()([inputs, x]), name="strided")


def test_reconstruction_mode_end_to_end():
    from tests import regression_data

    info = dataset_info("synthetic_mri")
    circular = LoadedModel.from_keras(_circular_denoiser(), info.mean, info.std,
                                      task="regression")
    strided = LoadedModel.from_keras(_strided_denoiser(), info.mean, info.std,
                                     task="regression")
    assert circular.task == "regression"
    lines = []
    result = evaluate(circular, "reconstruction", "synthetic_mri", num_examples=10, batch_size=4,
                      max_shift=4, baseline=strided, log=lines.append)
    assert result["max_shift"] == 4 and result["num_examples"] == 10
    assert "dB" in result["units"] and "ratio" in result["units"]
    inputs, targets = regression_data.arrays("test", 10)
    # Regression inputs go to the model as they are (no 0-255 scale) and come back untouched.
    np.testing.assert_allclose(circular(inputs), _circular_denoiser()(inputs), atol=1e-6)
    for name in ("circular", "strided"):
        entry = result["models"][name]
        assert set(entry) == {"psnr", "ssim", "nmse", "zero_filled_psnr", "zero_filled_ssim",
                              "zero_filled_nmse", "equivariance_nmse", "psnr_shift_change",
                              "equivariance_nmse_vs_shift"}
        assert entry["zero_filled_psnr"] == pytest.approx(metrics.psnr(targets, inputs))
        assert entry["zero_filled_nmse"] == pytest.approx(metrics.nmse(targets, inputs))
        assert 0.0 < entry["ssim"] <= 1.0
        assert list(entry["equivariance_nmse_vs_shift"]) == ["0", "1", "2", "3", "4"]
    outputs = _circular_denoiser()(inputs)
    assert result["models"]["circular"]["psnr"] == pytest.approx(
        metrics.psnr(targets, outputs), rel=1e-5)
    assert result["models"]["circular"]["equivariance_nmse"] <= 1e-12
    assert result["models"]["strided"]["equivariance_nmse"] > 1e-4
    assert result["models"]["strided"]["equivariance_nmse_vs_shift"]["1"] > 1e-4
    # One line per pass: 2 (f(x), f(shift x)) + 1 + 5 curve sizes, per model.
    assert len(lines) == 16, lines
    line = summary(result["models"]["circular"])
    assert line.startswith("PSNR ") and " dB | SSIM 0." in line and "equivariance NMSE" in line
    # Batching does not change the numbers.
    again = evaluate(circular, "reconstruction", "synthetic_mri", num_examples=10, batch_size=10,
                     max_shift=4, curves=False)["models"]["circular"]
    assert again["psnr"] == pytest.approx(result["models"]["circular"]["psnr"], rel=1e-6)
    assert "equivariance_nmse_vs_shift" not in again
    with pytest.raises(ValueError, match="does not fit synthetic_mri, a regression dataset; "
                                         "use 'reconstruction'"):
        evaluate(circular, "shift_consistency", "synthetic_mri", num_examples=4)
    with pytest.raises(ValueError, match="does not fit synthetic_shapes"):
        evaluate(circular, "reconstruction", "synthetic_shapes", num_examples=4)


def test_classifier_loading_is_unchanged_for_image_datasets():
    info = dataset_info("synthetic_shapes")
    net = _random_cnn()
    model = LoadedModel.from_keras(net, info.mean, info.std)
    assert model.task is None
    images, _ = load_arrays("synthetic_shapes", "test", num_examples=4)
    np.testing.assert_allclose(
        model(images), net((images / 255.0 - info.mean) / info.std), atol=1e-5)


def test_keras_file_of_a_regression_dataset_is_fed_unscaled(tmp_path):
    from tests import regression_data

    net = _circular_denoiser()
    net.save(tmp_path / "denoiser.keras")
    model = LoadedModel(str(tmp_path / "denoiser.keras"))
    assert model.task is None  # dataset unknown yet
    model.normalise_with((0.0,), (1.0,), task="regression")  # what eval.py does
    assert model.task == "regression"
    inputs, _ = regression_data.arrays("test", 3)
    np.testing.assert_allclose(model(inputs), net(inputs), atol=1e-6)
    # A classifier on regression data is not an image-to-image model.
    clf = LoadedModel.from_keras(_random_cnn(), (0.0,), (1.0,), task="regression")
    assert clf.task is None
