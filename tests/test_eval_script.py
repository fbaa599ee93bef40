"""eval.py on the three saved forms of a model: .keras, SavedModel and a run directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

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
