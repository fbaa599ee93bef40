"""eval.py on the three saved forms of a model: .keras, SavedModel and a run directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lps_keras.data import dataset_info
from lps_keras.evaluation import LoadedModel, load_arrays
from lps_keras.export import export_saved_model
from lps_keras.models import resnet20

REPO = Path(__file__).resolve().parents[1]


def _eval(args):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(REPO / "eval.py"), *args],
                            capture_output=True, text=True, env=env, timeout=400, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_consistency_of_lps_keras_file_vs_strided_savedmodel(tmp_path):
    info = dataset_info("synthetic_shapes")
    lps = resnet20(num_classes=10, input_shape=(32, 32, 3), stem="cifar", downsampling="lps",
                   logits_channels=4, name="lps")
    strided = resnet20(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                       downsampling="strided", name="strided")
    lps.save(tmp_path / "lps.keras")
    version = export_saved_model(strided, tmp_path / "exports", mean=info.mean, std=info.std)
    out = tmp_path / "results"
    _eval([f"--model={tmp_path / 'lps.keras'}", f"--baseline={version}",
           "--dataset=synthetic_shapes", "--num_examples=48", "--batch_size=16",
           "--eval_mode=shift_consistency", f"--output_dir={out}"])
    result = json.loads((out / "eval_shift_consistency.json").read_text())
    assert result["num_examples"] == 48
    # Labelled by the .keras file's stem and the export name, not the path's last part.
    lps_entry, strided_entry = result["models"]["lps"], result["models"]["strided"]
    assert lps_entry["circular_consistency"] == 100.0
    assert set(lps_entry["circular_vs_shift"].values()) == {100.0}
    # The baseline is evaluated too, with the same draws.
    assert strided_entry["circular_vs_shift"]["0"] == 100.0
    assert 0.0 <= strided_entry["standard_consistency"] <= 100.0
    png = out / "shift_consistency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_savedmodel_and_keras_file_agree(tmp_path):
    info = dataset_info("synthetic_shapes")
    model = resnet20(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                     downsampling="aps")
    model.save(tmp_path / "m.keras")
    version = export_saved_model(model, tmp_path / "exports", mean=info.mean, std=info.std)
    images, _ = load_arrays("synthetic_shapes", "test", num_examples=8)
    from_keras = LoadedModel(str(tmp_path / "m.keras"), info.mean, info.std)(images)
    from_saved = LoadedModel(version)(images)
    np.testing.assert_allclose(from_saved, from_keras, atol=1e-4)


def test_missing_model_is_a_clear_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(REPO / "eval.py"),
                             f"--model={tmp_path / 'nothing'}", "--dataset=synthetic_shapes"],
                            capture_output=True, text=True, env=env, timeout=200, check=False)
    assert result.returncode != 0
    assert "neither a run directory" in result.stderr
    assert "Traceback" not in result.stderr  # a usage error, not a crash


def test_keras_file_without_dataset_is_a_clear_error(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10)], name="bare")
    model.save(tmp_path / "bare.keras")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(REPO / "eval.py"),
                             f"--model={tmp_path / 'bare.keras'}"],
                            capture_output=True, text=True, env=env, timeout=200, check=False)
    assert result.returncode != 0
    assert "--dataset is required" in result.stderr and "Traceback" not in result.stderr


def _eval_fails(args, timeout=200):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(REPO / "eval.py"), *args],
                            capture_output=True, text=True, env=env, timeout=timeout,
                            check=False)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]  # a usage error
    return result.stderr


def _bare_keras(path):
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10)], name="bare")
    model.save(path)
    return path


@pytest.mark.parametrize("flag", ["--num_examples=-5", "--batch_size=-1", "--batch_size=0",
                                  "--seed=-1", "--max_shift=-1"])
def test_out_of_range_flags_are_usage_errors(tmp_path, flag):
    # Refused while parsing the flags, before any model or data is loaded.
    stderr = _eval_fails([f"--model={tmp_path / 'm.keras'}", flag], timeout=60)
    assert f"flag {flag}" in stderr


def test_max_shift_must_be_smaller_than_the_images(tmp_path):
    model = _bare_keras(tmp_path / "m.keras")
    stderr = _eval_fails([f"--model={model}", "--dataset=synthetic_shapes", "--max_shift=40",
                          "--num_examples=8", f"--output_dir={tmp_path / 'out'}"])
    assert "--max_shift=40 is not smaller than the evaluated synthetic_shapes images (32x32)" \
        in stderr
    assert not (tmp_path / "out").exists()


def test_garbage_keras_file_is_named_not_not_found(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(bytes(range(256)) * 4)
    stderr = _eval_fails([f"--model={path}", "--dataset=synthetic_shapes"])
    assert f"--model: {path} is not a Keras model file" in stderr
    assert "restore it from a backup" in stderr and "File not found" not in stderr


def test_corrupt_config_json_is_named(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _bare_keras(run / "model.keras")
    (run / "config.json").write_text('{"name": "x", "data": {"name": "synth')
    stderr = _eval_fails([f"--model={run}"])
    assert f"--model: {run / 'config.json'} is not valid JSON" in stderr
    assert "Restore it from a backup" in stderr


def _run_eval(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(REPO / "eval.py"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


def _denoisers(tmp_path):
    import keras

    from lps_keras.layers import CircularPad2D

    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(CircularPad2D(1)(inputs))
    x = keras.layers.Conv2D(1, 3)(CircularPad2D(1)(x))
    keras.Model(inputs, keras.layers.Add()([inputs, x])).save(tmp_path / "circular.keras")
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(1, 3, padding="same")(keras.layers.UpSampling2D(2)(x))
    keras.Model(inputs, keras.layers.Add()([inputs, x])).save(tmp_path / "strided.keras")
    return tmp_path / "circular.keras", tmp_path / "strided.keras"


def test_reconstruction_mode_writes_json_and_pngs(tmp_path):
    circular, strided = _denoisers(tmp_path)
    out = tmp_path / "results"
    result = _run_eval([
        f"--model={circular}", f"--baseline={strided}", "--dataset=synthetic_mri",
        "--num_examples=8", "--batch_size=4", "--max_shift=4", f"--output_dir={out}"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    data = json.loads((out / "eval_reconstruction.json").read_text())
    assert data["eval_mode"] == "reconstruction" and data["max_shift"] == 4
    assert data["num_examples"] == 8 and "dB" in data["units"]
    for name in ("circular", "strided"):
        assert {"psnr", "ssim", "nmse", "zero_filled_psnr", "zero_filled_ssim",
                "zero_filled_nmse", "equivariance_nmse", "psnr_shift_change",
                "equivariance_nmse_vs_shift"} <= set(data["models"][name])
    assert data["models"]["circular"]["equivariance_nmse"] <= 1e-12
    assert data["models"]["strided"]["equivariance_nmse"] > 1e-4
    for png in ("equivariance_vs_shift.png", "reconstruction_examples.png",
                "reconstruction_examples_baseline.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert "circular: PSNR " in result.stdout and "strided: PSNR " in result.stdout


def test_reconstruction_usage_errors(tmp_path):
    circular, _ = _denoisers(tmp_path)
    cases = [
        (["--max_shift=64"], "--max_shift=64 is not smaller than the evaluated "
                             "synthetic_mri images (64x64)"),
        (["--eval_mode=shift_consistency", "--max_shift=2"],
         "--eval_mode=shift_consistency does not fit synthetic_mri, a regression dataset; "
         "use --eval_mode=reconstruction"),
    ]
    for extra, message in cases:
        result = _run_eval([
            f"--model={circular}", "--dataset=synthetic_mri", "--num_examples=4",
            f"--output_dir={tmp_path / 'out'}", *extra])
        assert result.returncode != 0, result.stdout[-2000:]
        assert "Traceback" not in result.stderr, result.stderr[-4000:]
        assert message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "out").exists()
    stderr = _eval_fails([f"--model={circular}", "--dataset=synthetic_shapes",
                          "--eval_mode=reconstruction"])
    assert ("--eval_mode=reconstruction does not fit synthetic_shapes, a classification "
            "dataset; use --eval_mode=shift_consistency or --eval_mode=class_accuracy") in stderr
