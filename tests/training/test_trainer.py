"""The trainer never loses a run: divergence, resume, damaged state, reruns, early checks.

In-process runs of `Trainer` on a tiny config (ResNet-20 LPS, 64 synthetic images); the
train.py tests run the same code in subprocesses.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs.default import get_config
from lps_keras.errors import ConfigError, DivergenceError, RunDirectoryError
from lps_keras.rundir import RunDirectory
from lps_keras.training.trainer import Trainer


def tiny_config(tmp_path, **overrides):
    config = get_config()
    config.data.num_train_examples = 64
    config.data.num_eval_examples = 32
    config.train.batch_size = 32
    config.eval.batch_size = 32
    config.train.jit_compile = False
    config.train.epochs = 1
    config.model.logits_channels = 4
    config.export.dir = str(tmp_path / "exports")
    for dotted, value in overrides.items():
        section, key = dotted.split("__") if "__" in dotted else (None, dotted)
        target = config[section] if section else config
        target[key] = value
    return config


def train(config, workdir):
    return Trainer(config, str(workdir), tf.distribute.get_strategy()).run()


def versions(tmp_path, name="synthetic_shapes_resnet20_lps"):
    parent = tmp_path / "exports" / name
    return sorted(os.listdir(parent)) if parent.exists() else []


def checkpoint_weights(workdir):
    """{epoch: every float tensor} of the kept checkpoints."""
    state = tf.train.get_checkpoint_state(str(workdir / "checkpoints"))
    kept = {}
    for path in state.all_model_checkpoint_paths:
        reader = tf.train.load_checkpoint(path)
        kept[int(path.rsplit("-", 1)[1])] = [
            reader.get_tensor(k) for k, dtype in reader.get_variable_to_dtype_map().items()
            if dtype.is_floating]
    return kept


def test_divergence_stops_keeps_the_last_finite_checkpoint_and_reports_nothing(tmp_path,
                                                                              capsys):
    workdir = tmp_path / "run"
    train(tiny_config(tmp_path), workdir)
    results_before = (workdir / "results.json").read_bytes()
    with pytest.raises(DivergenceError, match=r"diverged in epoch \d.*learning_rate"):
        train(tiny_config(tmp_path, train__epochs=4, train__learning_rate=1e8), workdir)
    kept = checkpoint_weights(workdir)
    assert 1 in kept  # the last finite epoch before the huge learning rate
    for epoch, tensors in kept.items():
        assert all(np.isfinite(t).all() for t in tensors), epoch
    # Nothing non-finite was reported or exported; every history line is strict JSON.
    assert (workdir / "results.json").read_bytes() == results_before
    assert versions(tmp_path) == ["1"]
    for line in (workdir / "history.jsonl").read_text().splitlines():
        record = json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c}"))
        assert np.isfinite(record["loss"])
    # The run resumes from the last finite epoch once the rate is sane again.
    capsys.readouterr()
    results = train(tiny_config(tmp_path, train__epochs=2), workdir)
    assert f"Resuming from {workdir / 'checkpoints'}" in capsys.readouterr().out
    assert [h["epoch"] for h in results["history"]] == [1, 2]


def test_non_finite_weights_are_caught_even_with_a_finite_loss():
    from lps_keras.training.checkpoints import non_finite_weights

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d"),
                              keras.layers.BatchNormalization(name="bn")])
    assert non_finite_weights(model) == []
    model.get_layer("bn").moving_variance.assign([1.0, np.inf])
    assert [p.split("/", 1)[1] for p in non_finite_weights(model)] == ["bn/moving_variance"]


def test_rerunning_a_finished_run_changes_nothing(tmp_path, capsys):
    workdir = tmp_path / "run"
    first = train(tiny_config(tmp_path), workdir)
    stamp = os.stat(workdir / "model.keras").st_mtime_ns
    capsys.readouterr()
    again = train(tiny_config(tmp_path), workdir)
    assert "already complete" in capsys.readouterr().out
    assert again == json.loads((workdir / "results.json").read_text())
    assert again["accuracy"] == first["accuracy"]
    assert os.stat(workdir / "model.keras").st_mtime_ns == stamp
    assert versions(tmp_path) == ["1"]


def test_a_run_killed_after_exporting_never_exports_the_same_weights_again(tmp_path, capsys):
    workdir = tmp_path / "run"
    first = train(tiny_config(tmp_path), workdir)
    os.remove(workdir / "results.json")  # as if killed between the export and results.json
    capsys.readouterr()
    again = train(tiny_config(tmp_path), workdir)
    assert "already exported" in capsys.readouterr().out
    assert again["saved_model"] == first["saved_model"]
    assert versions(tmp_path) == ["1"]
    assert json.loads((workdir / "results.json").read_text())["saved_model"].endswith("/1")


def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path, capsys):
    workdir = tmp_path / "run"
    train(tiny_config(tmp_path, train__epochs=2, export__enabled=False), workdir)
    data = workdir / "checkpoints" / "ckpt-2.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # a full disk, a bad copy
    os.remove(workdir / "results.json")
    capsys.readouterr()
    results = train(tiny_config(tmp_path, train__epochs=2, export__enabled=False), workdir)
    out = capsys.readouterr().out
    assert "skipped damaged checkpoint" in out and "ckpt-2" in out
    assert f"Resuming from {workdir / 'checkpoints' / 'ckpt-1'} (epoch 1)" in out
    assert [h["epoch"] for h in results["history"]] == [1, 2]
    assert sorted(checkpoint_weights(workdir)) == [1, 2]  # epoch 2 saved again, whole


def test_no_readable_checkpoint_is_a_clear_error_that_deletes_nothing(tmp_path):
    workdir = tmp_path / "run"
    train(tiny_config(tmp_path, export__enabled=False), workdir)
    data = workdir / "checkpoints" / "ckpt-1.data-00000-of-00001"
    data.write_bytes(b"")
    with pytest.raises(RunDirectoryError, match="No checkpoint .* can be restored.*ckpt-1"):
        train(tiny_config(tmp_path, train__epochs=2, export__enabled=False), workdir)
    assert data.exists() and (workdir / "config.json").exists()


def test_a_torn_last_history_line_is_repaired_on_resume(tmp_path, capsys):
    workdir = tmp_path / "run"
    train(tiny_config(tmp_path, export__enabled=False), workdir)
    with open(workdir / "history.jsonl", "a") as f:
        f.write('{"epoch": 2, "loss": 0.3')  # the power went off mid-write
    capsys.readouterr()
    train(tiny_config(tmp_path, train__epochs=2, export__enabled=False), workdir)
    assert "dropped a partial last line" in capsys.readouterr().out
    lines = (workdir / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_resuming_another_model_is_refused_and_keeps_the_run(tmp_path):
    workdir = tmp_path / "run"
    train(tiny_config(tmp_path, export__enabled=False), workdir)
    snapshot = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()
                and "tensorboard" not in p.parts}
    config = tiny_config(tmp_path, train__epochs=2, export__enabled=False)
    config.model.downsampling = "aps"
    with pytest.raises(RunDirectoryError, match=r"config\.model\.downsampling: 'lps' -> 'aps'"):
        train(config, workdir)
    after = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()
             and "tensorboard" not in p.parts}
    after.pop(workdir / ".lock", None)
    snapshot.pop(workdir / ".lock", None)
    assert after == snapshot


def test_resuming_with_another_learning_rate_warns_and_records_it(tmp_path, capsys):
    workdir = tmp_path / "run"
    train(tiny_config(tmp_path, export__enabled=False), workdir)
    stored = (workdir / "config.json").read_bytes()
    capsys.readouterr()
    train(tiny_config(tmp_path, train__epochs=2, train__learning_rate=0.01,
                      export__enabled=False), workdir)
    out = capsys.readouterr().out
    assert "WARNING: Resuming with changed settings" in out
    assert "config.train.learning_rate: 0.05 -> 0.01" in out
    assert (workdir / "config.json").read_bytes() == stored  # what the run started with
    change = json.loads((workdir / "config_changes.jsonl").read_text())
    assert change["resumed_at_epoch"] == 1
    assert change["changes"]["train.learning_rate"] == {"stored": 0.05, "now": 0.01}


def test_a_corrupt_stored_config_is_named_and_left_alone(tmp_path):
    workdir = tmp_path / "run"
    train(tiny_config(tmp_path, export__enabled=False), workdir)
    (workdir / "config.json").write_text("{trunc")
    with pytest.raises(RunDirectoryError, match=r"config\.json is not valid JSON"):
        train(tiny_config(tmp_path, train__epochs=2, export__enabled=False), workdir)
    assert (workdir / "config.json").read_text() == "{trunc"


@pytest.mark.parametrize("overrides, setting", [
    ({"train__batch_size": 128}, "config.train.batch_size"),  # larger than the 64 images
    ({"eval__split": "val"}, "config.eval.split"),
    ({"eval__batch_size": 0}, "config.eval.batch_size"),
    ({"eval__max_shift": -1}, "config.eval.max_shift"),
    ({"data__source": "foldr"}, "config.data.source"),
    ({"train__epochs": 0}, "config.train.epochs"),
    ({"export__name": "a/b"}, "config.export.name"),
    ({"model__downsampling": "lpss"}, "config.model"),
])
def test_bad_settings_fail_before_anything_is_written(tmp_path, overrides, setting):
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError, match=rf"^{setting}"):
        train(tiny_config(tmp_path, **overrides), workdir)
    assert sorted(os.listdir(workdir)) == [".lock"]
    assert not (tmp_path / "exports").exists()


def test_an_evaluation_shift_larger_than_the_image_fails_before_training(tmp_path):
    # Shifts of 40 pixels move a 32-pixel image out of view.
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"^config\.eval\.max_shift=40 is not smaller"):
        train(tiny_config(tmp_path, eval__max_shift=40), workdir)
    assert not (workdir / "checkpoints").exists() and not (workdir / "config.json").exists()


def test_an_unwritable_export_directory_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    workdir = tmp_path / "run"
    config = tiny_config(tmp_path)
    config.export.dir = str(blocker / "exports")
    with pytest.raises(ConfigError, match=rf"^config\.export\.dir: cannot write to {blocker}"):
        train(config, workdir)
    assert not (workdir / "checkpoints").exists()


def test_the_export_name_follows_the_model_built(tmp_path):
    results = train(tiny_config(tmp_path, model__downsampling="strided"), tmp_path / "run")
    assert results["saved_model"] == str(
        tmp_path / "exports" / "synthetic_shapes_resnet20_strided" / "1")
    assert RunDirectory(tmp_path / "run").read_config()["name"] == \
        "synthetic_shapes_resnet20_strided"


def _image_folder(root, per_class=16, classes=("ant", "bee", "cat")):
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", 2)):
        for name in classes:
            os.makedirs(root / split / name)
            for k in range(count):
                image = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
                tf.io.write_file(str(root / split / name / f"{k}.png"),
                                 tf.io.encode_png(image))
    return root


def _folder_config(tmp_path, root):
    return tiny_config(tmp_path, data__name="image_folder", data__data_dir=str(root),
                       data__image_size=32, eval__split="validation")


def test_an_image_folder_trains_with_its_classes_from_the_folders(tmp_path):
    root = _image_folder(tmp_path / "images")
    results = train(_folder_config(tmp_path, root), tmp_path / "run")
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.output_shape == (None, 3)
    metadata = json.loads(
        (tmp_path / "exports" / "image_folder_resnet20_lps" / "1" /
         "export_metadata.json").read_text())
    assert metadata["class_names"] == ["ant", "bee", "cat"] and metadata["num_classes"] == 3
    assert results["num_examples"] == 6


def test_a_corrupt_image_is_named_before_training(tmp_path):
    from lps_keras.data.errors import CorruptDatasetError

    root = _image_folder(tmp_path / "images")
    bad = root / "train" / "bee" / "3.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(CorruptDatasetError, match=rf"{bad}"):
        train(_folder_config(tmp_path, root), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_paper_config_trains_an_epoch_with_the_papers_optimizer(tmp_path):
    from tests.test_configs import load

    config = load("cifar10_resnet18_lps.py")  # the paper's recipe, on generated data
    config.data.name = "synthetic_shapes"
    config.data.num_train_examples = 64
    config.data.num_eval_examples = 16
    config.train.batch_size = 32
    config.eval.batch_size = 16
    config.train.epochs = 1
    config.export.enabled = False
    trainer = Trainer(config, str(tmp_path / "run"), tf.distribute.get_strategy())
    assert type(trainer.check().optimizer).__name__ == "PyTorchSGD"
    results = trainer.run()
    assert np.isfinite(results["history"][0]["loss"])
    assert results["circular_consistency"] == 100.0
