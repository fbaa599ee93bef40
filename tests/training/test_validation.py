"""Validation during training, the best checkpoint, the learning-rate record and the
console of a redirected run.

Tiny runs: a ResNet-20 LPS classifier in process (`test_trainer.tiny_config`), a DeepLab
segmenter through `train.py` with stdout to a pipe; the regression path is in
`test_regression_training.py`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from lps_keras.data import dataset_info
from lps_keras.data.holdout import holdout_mask
from lps_keras.errors import ConfigError
from lps_keras.rundir import RunDirectory
from lps_keras.training import builders, checkpoints, preflight
from lps_keras.training.validation import Validator, larger_is_better
from tests.training.test_trainer import tiny_config, train

REPO = Path(__file__).resolve().parents[2]


def tensorboard_tags(directory):
    """{tag: [(step, value), ...] by step} of every scalar in the event files under `directory`."""
    tags = {}
    for root, _, files in os.walk(directory):
        for name in files:
            if "tfevents" not in name:
                continue
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") \
                        else value.simple_value
                    tags.setdefault(value.tag, []).append((event.step, number))
    return {tag: sorted(values) for tag, values in tags.items()}  # one file per process


def test_classifier_validates_keeps_the_best_epoch_and_restores_it_on_resume(tmp_path,
                                                                              capsys):
    workdir = tmp_path / "run"
    settings = dict(eval__validation_split="validation", eval__num_validation_examples=32,
                    train__best_metric="val_loss", export__enabled=False,
                    train__learning_rate=0.2)
    train(tiny_config(tmp_path, train__epochs=2, **settings), workdir)
    history = RunDirectory(workdir).load_history()
    for record in history:
        assert {"val_loss", "val_accuracy", "val_circular_consistency"} <= set(record)
        assert 0 <= record["val_accuracy"] <= 100 and np.isfinite(record["val_loss"])
        assert record["val_circular_consistency"] == 100.0  # LPS: the guarantee
    best_epoch = 1 + int(np.argmin([r["val_loss"] for r in history]))
    note = json.loads((workdir / "checkpoints" / "best" / "best.json").read_text())
    assert note == {"metric": "val_loss", "mode": "min", "epoch": best_epoch,
                    "value": pytest.approx(history[best_epoch - 1]["val_loss"]),
                    "checkpoint": f"best-{best_epoch}"}

    # Resume for one more epoch, now exporting the best: the best so far is restored (an
    # epoch must beat it, not start a new record) and the evaluated weights are the best's.
    capsys.readouterr()
    results = train(tiny_config(tmp_path, train__epochs=3, train__export_best=True,
                                **settings), workdir)
    out = capsys.readouterr().out
    assert f"Best val_loss so far: {note['value']:.6g} (epoch {best_epoch})." in out
    history = results["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    best_epoch = 1 + int(np.argmin([r["val_loss"] for r in history]))
    assert results["weights"]["epoch"] == best_epoch
    assert results["weights"]["chosen_by"] == "best val_loss"
    assert results["weights"]["best"]["value"] == pytest.approx(
        history[best_epoch - 1]["val_loss"])
    saved = keras.saving.load_model(str(workdir / "model.keras"))
    before = [w.numpy().copy() for w in saved.weights]
    tf.train.Checkpoint(model=saved).read(
        str(workdir / "checkpoints" / "best" / f"best-{best_epoch}")).expect_partial()
    for a, w in zip(before, saved.weights, strict=True):
        np.testing.assert_array_equal(a, w.numpy())

    # The learning rate recorded is the one of the epoch's first and last step (epochs 1-2
    # ran the cosine schedule of a 2-epoch run, epoch 3 that of a 3-epoch run).
    steps = 2  # 64 images, batch 32
    for record in history:
        total = 2 if record["epoch"] <= 2 else 3
        optimizer = builders.build_optimizer(tiny_config(tmp_path, train__epochs=total,
                                                         **settings).train, steps, saved)
        for key, step in (("learning_rate_first_step", 0), ("learning_rate_last_step", 1)):
            optimizer.iterations.assign((record["epoch"] - 1) * steps + step)
            assert record[key] == pytest.approx(float(optimizer.learning_rate)), key
    assert history[0]["learning_rate_first_step"] != history[0]["learning_rate_last_step"]
    assert "learning_rate_first_step" in results["history_units"]

    # TensorBoard: validation scalars every epoch, the test metrics once at the end.
    tags = tensorboard_tags(workdir / "tensorboard")
    assert [s for s, _ in tags["validation/loss"]] == [1, 2, 3]
    assert [v for _, v in tags["validation/loss"]] == pytest.approx(
        [r["val_loss"] for r in history])
    # Each finished run writes its test metrics at its last epoch (the first run's at 2).
    assert tags["test/accuracy"][-1] == (3, pytest.approx(results["accuracy"]))
    assert [s for s, _ in tags["test/accuracy"]] == [2, 3]
    assert "test/circular_consistency" in tags


def test_the_best_checkpoint_keeps_the_better_epoch(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = checkpoints.BestCheckpoint(str(tmp_path / "best"), model, "val_psnr", True)
    kept = {}
    for epoch, value in ((1, 20.0), (2, 25.0), (3, 24.0), (4, float("nan")), (5, 25.0)):
        model.weights[0].assign(np.full((2, 1), epoch, np.float32))
        improved = best.update(epoch, value)
        assert improved == (epoch == 2 or epoch == 1), epoch
        kept[epoch] = improved
    assert (best.best_epoch, best.best_value) == (2, 25.0)
    model.weights[0].assign(np.zeros((2, 1), np.float32))
    assert best.restore_weights() == 2
    np.testing.assert_array_equal(model.weights[0].numpy(), 2.0)
    assert larger_is_better("val_accuracy") and not larger_is_better("val_loss")
    assert not larger_is_better("val_equivariance_nmse")


@pytest.mark.parametrize("overrides, message", [
    ({"eval__validation_split": "test"}, "is the test split"),
    ({"eval__validation_split": "val"}, "not a split of synthetic_shapes"),
    ({"eval__validation_split": "train"}, "is the training data"),
    ({"eval__validate_every": 0}, "validate_every` must be a positive int"),
    ({"eval__validation_split": "holdout"}, "config.data.holdout: .*'holdout' split are "
     "only implemented for cifar10"),
    ({"data__holdout": 8}, "only implemented for cifar10, imagenet, imagenette; "
     "synthetic_shapes has its own splits"),
    ({"data__holdout": -1}, "config.data.holdout` must be a non-negative int"),
    ({"train__best_metric": "val_accuracy"}, r"val_ metrics need config.eval.validation"),
    ({"train__best_metric": "val_psnr", "eval__validation_split": "validation"},
     "choose one of loss, accuracy, val_loss, val_accuracy, val_circular_consistency"),
    ({"train__export_best": True}, "export_best=True needs config.train.best_metric"),
])
def test_bad_validation_settings_are_refused(tmp_path, overrides, message):
    config = tiny_config(tmp_path, **overrides)
    with pytest.raises(ConfigError, match=message):
        preflight.check_settings(config, dataset_info("synthetic_shapes"), 1)


def test_a_validator_for_segmentation_reports_miou_and_massc(tmp_path):
    from configs.synthetic_shapes_seg_deeplab import get_config

    config = get_config()
    config.eval.validation_split = "validation"
    config.eval.num_validation_examples = 4
    config.data.image_size = 32
    info = dataset_info("synthetic_shapes_seg")
    validator = Validator.from_config(config, info)
    assert validator.metric_names == ("loss", "mean_iou", "circular_massc")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(info.num_classes, 1)(inputs))  # 1x1
    result = validator(model)
    assert set(result) == {"loss", "mean_iou", "circular_massc"}
    assert result["circular_massc"] == 100.0 and 0 <= result["mean_iou"] <= 100


def test_a_redirected_train_py_prints_one_line_per_epoch_and_no_progress_codes(tmp_path):
    """A segmenter through train.py, stdout to a pipe: validation metrics in the history
    and on the epoch lines, no progress-bar animation in the log."""
    workdir = tmp_path / "run"
    args = ["--config=" + str(REPO / "configs" / "synthetic_shapes_seg_deeplab.py"),
            "--config.train.epochs=2", "--config.data.num_train_examples=32",
            "--config.data.num_eval_examples=8", "--config.train.batch_size=8",
            "--config.eval.batch_size=8", "--config.data.image_size=32",
            "--config.export.enabled=False", "--config.eval.validation_split=validation",
            "--config.eval.num_validation_examples=8",
            "--config.train.best_metric=val_mean_iou", f"--workdir={workdir}"]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    for key in ("TF_CONFIG", "LPS_KERAS_WEIGHTS_CHECKSUM"):
        env.pop(key, None)
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            timeout=480, cwd=str(tmp_path), check=False)
    stdout = result.stdout.decode()
    assert result.returncode == 0, stdout[-2000:] + result.stderr.decode()[-3000:]
    assert b"\x1b[" not in result.stdout and b"\r" not in result.stdout
    lines = stdout.splitlines()
    epochs = [line for line in lines if line.startswith("Epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["Epoch 1/2", "Epoch 2/2"], stdout
    for line in epochs:
        assert "val_mean_iou " in line and "val_circular_massc " in line and " s" in line
        assert len(line) < 400
    compiling = lines.index("Compiling the train step ...")
    assert compiling < lines.index(epochs[0])
    history = RunDirectory(workdir).load_history()
    for record in history:
        assert {"val_loss", "val_mean_iou", "val_circular_massc"} <= set(record)
        assert 0 <= record["val_mean_iou"] <= 100
    assert (workdir / "checkpoints" / "best" / "best.json").exists()
    tags = tensorboard_tags(workdir / "tensorboard")
    assert {"validation/mean_iou", "validation/circular_massc", "validation/loss",
            "test/mean_iou", "test/circular_massc", "train/learning_rate_first_step"} \
        <= set(tags)


def test_cifar10_validates_on_a_held_out_part_of_its_training_split(tmp_path, capsys):
    from tests.training.test_preflight import write_cifar10

    data_dir = write_cifar10(str(tmp_path / "data"), 96, np.random.default_rng(0))
    config = tiny_config(tmp_path, data__name="cifar10", data__data_dir=data_dir,
                         data__holdout=32, eval__validation_split="holdout",
                         eval__num_validation_examples=0, export__enabled=False)
    info = dataset_info("cifar10", data_dir=data_dir)
    validator = Validator.from_config(config, info)
    inputs, targets = validator.arrays()
    train_images, train_labels = cifar_train(data_dir)
    held = holdout_mask(len(train_images), 32)  # 100: five batches of 20
    np.testing.assert_array_equal(inputs, train_images[held])
    np.testing.assert_array_equal(targets, train_labels[held])

    capsys.readouterr()
    results = train(config, tmp_path / "run")
    (record,) = results["history"]
    assert {"val_loss", "val_accuracy", "val_circular_consistency"} <= set(record)
    # (100 - 32) // 32 steps: the held-out 32 are not trained on (all 100 would give 3).
    assert "epochs 1-1, 2 steps of 32 images" in capsys.readouterr().out


def cifar_train(data_dir):
    from lps_keras.data import cifar

    return cifar.load_cifar10("train", data_dir=data_dir, source="folder")


def test_cifar10_without_a_holdout_is_told_how_to_validate(tmp_path):
    from configs.cifar10_resnet18_lps import get_config as cifar_config
    from lps_keras.training.trainer import Trainer

    config = cifar_config()
    config.eval.validation_split = "validation"
    with pytest.raises(ConfigError, match="set config.data.holdout=<N> and "
                       "config.eval.validation_split='holdout'"):
        Trainer(config, str(tmp_path / "run"), tf.distribute.get_strategy()).check()
    assert not (tmp_path / "run").exists()  # refused before the run directory exists


def test_imagenet_is_pointed_from_its_test_split_to_a_holdout():
    from configs.imagenet_resnet18_lps import get_config as imagenet_config

    config = imagenet_config()
    info = dataset_info("imagenet")
    config.eval.validation_split = "validation"  # ImageNet's reported split
    with pytest.raises(ConfigError, match="is the test split .*set config.data.holdout=<N>"):
        preflight.check_settings(config, info, 1)
    config.eval.validation_split, config.data.holdout = "holdout", 10000
    validator = Validator.from_config(config, info)
    assert validator.split == "holdout" and validator.data_settings["holdout"] == 10000
