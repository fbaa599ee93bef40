"""train.py's results.json and eval.py are one evaluation path: same images, same numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lps_keras import metrics
from lps_keras.data import dataset_info
from lps_keras.evaluation import LoadedModel, load_arrays

REPO = Path(__file__).resolve().parents[2]

# Enough training, at a learning rate low enough, that the model's predictions vary (a
# constant model agrees with anything; at the default rate 16 steps can collapse it).
TINY_CLS = ["--config.train.epochs=2", "--config.data.num_train_examples=256",
            "--config.data.num_eval_examples=64", "--config.train.batch_size=32",
            "--config.eval.batch_size=32", "--config.train.jit_compile=False",
            "--config.train.learning_rate=0.01"]
TINY_SEG = ["--config=" + str(REPO / "configs" / "synthetic_shapes_seg_deeplab.py"),
            "--config.train.epochs=1", "--config.data.num_train_examples=32",
            "--config.data.num_eval_examples=8", "--config.train.batch_size=8",
            "--config.eval.batch_size=8", "--config.data.image_size=32",
            "--config.export.enabled=False"]
HEADLINE = ("accuracy", "circular_consistency", "standard_consistency")


def _run(script, args, cwd, ok=True):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    for key in ("TF_CONFIG", "LPS_KERAS_WEIGHTS_CHECKSUM"):
        env.pop(key, None)
    os.makedirs(cwd, exist_ok=True)
    result = subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                            text=True, env=env, timeout=480, cwd=str(cwd), check=False)
    if ok:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _snapshot(directory):
    return sorted((str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in Path(directory).rglob("*"))


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    out = _run("train.py", [f"--workdir={root / 'run'}", f"--config.export.dir={root / 'exports'}",
                            *TINY_CLS], cwd=root)
    return root, out.stdout, json.loads((root / "run" / "results.json").read_text())


def test_results_json_and_eval_py_agree(cls_run):
    root, stdout, results = cls_run
    assert "weights_checksum" not in stdout
    out = _run("eval.py", [f"--model={root / 'run'}"], cwd=root)  # no mode, no output dir
    evaluated = json.loads((root / "run" / "eval" / "eval_shift_consistency.json").read_text())
    assert (root / "run" / "eval" / "shift_consistency.png").exists()
    entry = evaluated["models"]["synthetic_shapes_resnet20_lps"]  # the config's name
    assert evaluated["num_examples"] == results["num_examples"] == 64
    assert {k: entry[k] for k in HEADLINE} == {k: results[k] for k in HEADLINE}
    assert f"accuracy {results['accuracy']:.2f}%" in out.stdout
    # The agreement means something only if the predictions vary between images.
    model = LoadedModel(root / "run")
    images, _ = load_arrays("synthetic_shapes", "test", num_examples=64)
    assert len(np.unique(model.predict_classes(images))) > 1
    # Standard shifts of raw pixels (black fill), the model normalising: as in the papers.
    assert results["standard_consistency"] == metrics.shift_consistency(
        model, images, mode="standard", max_shift=3, seed=0)


def test_savedmodel_eval_needs_no_dataset_and_writes_outside_it(cls_run):
    root, _, results = cls_run
    version = Path(results["saved_model"])
    meta = json.loads((version / "export_metadata.json").read_text())
    assert meta["dataset"] == "synthetic_shapes"
    before = _snapshot(version)
    cwd = root / "elsewhere"
    _run("eval.py", [f"--model={version}", "--num_examples=64", "--eval_mode=class_accuracy"],
         cwd=cwd)
    assert _snapshot(version) == before  # a server may be loading it
    evaluated = json.loads(
        (cwd / "eval" / "synthetic_shapes_resnet20_lps" / "eval_class_accuracy.json").read_text())
    assert list(evaluated["models"]) == ["synthetic_shapes_resnet20_lps"]  # not "1"
    assert evaluated["dataset"] == "synthetic_shapes"
    # Same images and normalisation; the SavedModel's graph may round differently.
    assert abs(evaluated["models"]["synthetic_shapes_resnet20_lps"]["accuracy"]
               - results["accuracy"]) <= 100.0 / 64
    bad = _run("eval.py", [f"--model={version}", f"--output_dir={version / 'eval'}"],
               cwd=cwd, ok=False)
    assert bad.returncode != 0 and "inside the SavedModel" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert _snapshot(version) == before


def test_segmentation_run_reports_percentages_and_eval_py_takes_its_mode(tmp_path):
    out = _run("train.py", [f"--workdir={tmp_path / 'run'}", *TINY_SEG], cwd=tmp_path)
    summary = [line for line in out.stdout.splitlines() if line.startswith("Test (")]
    assert len(summary) == 1 and summary[0].startswith("Test (8 images): mIoU ")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    names = dataset_info("synthetic_shapes_seg").class_names
    assert list(results["per_class_iou"]) == list(names)
    ious = [v for v in results["per_class_iou"].values() if v is not None]
    assert ious and all(0.0 <= v <= 100.0 for v in ious)
    assert 0.0 <= results["mean_iou"] <= 100.0
    assert results["mean_iou"] == pytest.approx(np.mean(ious))  # the same unit
    assert results["circular_massc"] == 100.0  # LPS + LPU: exactly equivariant
    assert 0.0 <= results["standard_massc"] <= 100.0

    _run("eval.py", [f"--model={tmp_path / 'run'}"], cwd=tmp_path)  # no --eval_mode
    evaluated = json.loads((tmp_path / "run" / "eval" / "eval_segmentation.json").read_text())
    entry = evaluated["models"]["synthetic_shapes_seg_deeplabv3plus_resnet18_lps_lpu"]
    for key in ("mean_iou", "per_class_iou", "circular_massc", "standard_massc"):
        assert entry[key] == results[key], key
    png = tmp_path / "run" / "eval" / "segmentation_examples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
