"""The regression (U-Net) path of the trainer on tiny synthetic_mri runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs.synthetic_mri_unet_aps import get_config
from lps_keras.errors import ConfigError
from lps_keras.evaluation import load_arrays
from lps_keras.metrics import psnr
from lps_keras.training import builders
from lps_keras.training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(tmp_path, **overrides):
    config = get_config()
    config.data.image_size = 32
    config.data.num_train_examples = 32
    config.data.num_eval_examples = 8
    config.eval.num_validation_examples = 8
    config.model.channels = [4, 8, 16]
    config.train.batch_size = 8
    config.eval.batch_size = 8
    config.eval.max_shift = 8
    config.train.epochs = 2
    config.export.dir = str(tmp_path / "exports")
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        config[section][key] = value
    return config


def train(config, workdir):
    return Trainer(config, str(workdir), tf.distribute.get_strategy()).run()


def test_a_unet_trains_validates_and_reports_reconstruction_metrics(tmp_path):
    workdir = tmp_path / "run"
    results = train(tiny_config(tmp_path), workdir)
    history = [json.loads(line) for line in (workdir / "history.jsonl").read_text().split("\n")
               if line]
    assert [h["epoch"] for h in history] == [1, 2]
    for record in history:
        assert {"loss", "psnr", "val_psnr", "val_ssim", "val_nmse", "val_loss",
                "val_equivariance_nmse", "learning_rate_first_step"} <= set(record)
        assert np.isfinite(record["val_psnr"]) and 0 < record["val_ssim"] <= 1
    assert history[0]["learning_rate_first_step"] == pytest.approx(1e-3)  # Adam, step decay
    assert history[0]["val_equivariance_nmse"] == 0.0  # exact: APS + APS-U, circular
    assert history[1]["loss"] < history[0]["loss"]
    stored = json.loads((workdir / "results.json").read_text())
    for key in ("psnr", "ssim", "nmse", "zero_filled_psnr", "equivariance_nmse",
                "psnr_shift_change"):
        assert stored[key] == results[key] and np.isfinite(stored[key]), key
    assert stored["history_units"]["psnr"].startswith("dB")
    # APS + APS-U with circular padding: shifting the input shifts the output exactly.
    assert stored["equivariance_nmse"] == 0.0
    assert stored["max_shift"] == 8 and stored["split"] == "test"
    metadata = json.loads(open(os.path.join(stored["saved_model"], "export_metadata.json")).read())
    assert metadata["task"] == "regression" and metadata["size_multiple"] == 4
    # The validation PSNR is the metric of the final evaluation, on the validation images.
    import keras

    model = keras.saving.load_model(str(workdir / "model.keras"))
    inputs, targets = load_arrays("synthetic_mri", "validation", num_examples=8, image_size=32)
    outputs = model(inputs, training=False).numpy()
    assert history[-1]["val_psnr"] == pytest.approx(psnr(targets, outputs), rel=1e-5)
    # eval.py reproduces the run's test metrics from its run directory.
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "eval.py"), f"--model={workdir}",
         f"--output_dir={out}"], capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((out / "eval_reconstruction.json").read_text())
    entry = again["models"][next(iter(again["models"]))]
    assert entry["psnr"] == pytest.approx(stored["psnr"], rel=1e-6)
    assert entry["equivariance_nmse"] == stored["equivariance_nmse"]


def test_l1_loss_and_its_training_metric():
    targets = tf.constant(np.random.default_rng(0).uniform(0, 2, (3, 8, 8, 1)), tf.float32)
    outputs = targets + 0.1
    mse = builders.per_example_loss("regression", loss="mse")(targets, outputs).numpy()
    l1 = builders.per_example_loss("regression", loss="l1")(targets, outputs).numpy()
    np.testing.assert_allclose(mse, 0.01, rtol=1e-4)
    np.testing.assert_allclose(l1, 0.1, rtol=1e-4)
    total, count = builders.batch_metric("regression", targets, outputs)
    assert count.numpy() == 3
    np.testing.assert_allclose(total.numpy() / 3, psnr(targets.numpy(), outputs.numpy()),
                               rtol=1e-5)


@pytest.mark.parametrize("overrides, message", [
    ({"train__loss": "huber"}, r"config.train.loss: the loss must be 'auto' or one of "
                               r"\('mse', 'l1'\) for regression data; got 'huber'"),
    ({"eval__validation_split": "test"}, "is the test split"),
    ({"eval__validation_split": "val"}, "'val' is not a split of synthetic_mri"),
    ({"train__optimizer": "adagrad"}, "config.train.optimizer must be one of"),
    ({"model__channels": [4, 8, 16, 32, 64, 128, 256]}, "divisible by 64"),
])
def test_bad_regression_settings_fail_before_training(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        Trainer(tiny_config(tmp_path, **overrides), str(tmp_path / "run"),
                tf.distribute.get_strategy()).check()
    assert not (tmp_path / "run" / "history.jsonl").exists()

