"""`lps_keras.export.export_saved_model`: TF Serving layout, raw-image signatures, atomicity.

The served outputs are checked in a fresh Python that never imports lps_keras, and with
`saved_model_cli` (which loads the SavedModel the TF1 way, like TF Serving). The two real
models are exported once per module, and the checking subprocesses run in the background
while the fast tests run (keep the test order: `exported` users first, `served` last).
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lps_keras.export import METADATA_FILENAME, export_saved_model
from lps_keras.layers import LPSDownsampling2D
from lps_keras.models import deeplabv3plus, resnet20
from tests.helpers import SIGNATURE_LOADER as _LOADER
from tests.helpers import calibrate_batchnorm, to_numpy

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CLASSES = [f"class_{i}" for i in range(10)]
SEG_SIZES = (32, 64)  # two sizes for the dynamic-size segmenter (multiples of 32)



def _cli():
    path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return path if os.path.exists(path) else shutil.which("saved_model_cli")


def _normalise(images):
    x = images.astype("float32")
    mean = np.asarray(CIFAR_MEAN, "float32")
    std = np.asarray(CIFAR_STD, "float32")
    return (x / np.float32(255.0) - mean) / std


def _uint8_images(rng, shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _tiny_classifier(name="tiny", input_shape=(8, 8, 3), outputs=3):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(outputs)(x), name=name)


def _listing(model_dir):
    return sorted(os.listdir(model_dir))


# --------------------------------------------------------------------------- shared exports


def _start(commands, root, name, cmd):
    """Starts `cmd` in the background; output goes to files (a full pipe would block it)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(root / f"{name}.out", "w") as out, open(root / f"{name}.err", "w") as err:
        commands[name] = subprocess.Popen(cmd, stdout=out, stderr=err, text=True,
                                          cwd=str(root), env=env)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Exports a resnet20-LPS classifier (fixed 32x32) and a dynamic-size DeepLabV3+ and
    records the Keras outputs. The checking subprocesses start as soon as their inputs
    exist and run while this process carries on; `served` collects them."""
    procs = {}
    try:
        yield _export_and_start_checks(tmp_path_factory.mktemp("export"), procs)
    finally:
        for proc in procs.values():  # still running only if a test failed early
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _export_and_start_checks(root, procs):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    cases, jobs = {}, []

    def add_case(key, version_dir, signature, images, expected):
        np.save(root / f"{key}.npy", images)
        jobs.append({"key": key, "dir": str(version_dir), "signature": signature,
                     "input": str(root / f"{key}.npy")})
        cases[key] = expected

    classifier = resnet20(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                          downsampling="lps")
    calibrate_batchnorm(classifier, _normalise(_uint8_images(rng, (8, 32, 32, 3))))
    classifier_dir = export_saved_model(classifier, root / "models", name="cifar",
                                        mean=CIFAR_MEAN, std=CIFAR_STD, class_names=CLASSES,
                                        dataset="cifar10")
    cli = _cli()
    if cli is not None:
        np.save(root / "cli_input.npy", np.zeros((2, 32, 32, 3), np.uint8))
        _start(procs, root, "show", [cli, "show", "--all", "--dir", classifier_dir])
        _start(procs, root, "run", [
            cli, "run", "--dir", classifier_dir, "--tag_set", "serve", "--signature_def",
            "serving_default", "--inputs", f"images={root / 'cli_input.npy'}",
            "--outdir", str(root / "cli_out")])
    for batch in (1, 3):
        raw = _uint8_images(rng, (batch, 32, 32, 3))
        # Non-integer pixels exercise the float path (e.g. resized images).
        raw_float = rng.uniform(0, 255, size=(batch, 32, 32, 3)).astype("float32")
        for signature, images in (("serving_default", raw), ("serving_float", raw_float)):
            logits = to_numpy(classifier(_normalise(images), training=False))
            add_case(f"cls-{signature}-{batch}", classifier_dir, signature, images, logits)
    add_case("cls-wrong-size", classifier_dir, "serving_default",
             _uint8_images(rng, (2, 64, 64, 3)), None)
    add_case("cls-empty-serving_default", classifier_dir, "serving_default",
             np.zeros((0, 32, 32, 3), np.uint8), None)
    add_case("cls-empty-serving_float", classifier_dir, "serving_float",
             np.zeros((0, 32, 32, 3), np.float32), None)
    for bad in ("nan", "inf"):
        images = rng.uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
        images[1, 5, 7, 2] = float(bad)
        add_case(f"cls-{bad}", classifier_dir, "serving_float", images, None)

    segmenter = deeplabv3plus("resnet18", num_classes=5, input_shape=(None, None, 3),
                              logits_channels=8, aspp_filters=16, decoder_filters=16,
                              low_level_filters=8)
    calibrate_batchnorm(segmenter, _normalise(_uint8_images(rng, (2, 64, 64, 3))))
    segmenter_dir = export_saved_model(segmenter, root / "models", name="seg",
                                       mean=CIFAR_MEAN, std=CIFAR_STD)
    seg_images = {f"seg-{size}": _uint8_images(rng, (2, size, size, 3)) for size in SEG_SIZES}
    for key, raw in seg_images.items():
        add_case(key, segmenter_dir, "serving_default", raw, None)

    with open(root / "jobs.json", "w") as f:
        json.dump(jobs, f)
    _start(procs, root, "loader", [sys.executable, "-c", _LOADER, str(root / "jobs.json"),
                                   str(root / "served.npz")])
    for key, raw in seg_images.items():  # while the loader starts up
        cases[key] = to_numpy(segmenter(_normalise(raw), training=False))
    return {
        "root": root,
        "procs": procs,
        "cases": cases,
        "classifier": classifier,
        "classifier_dir": classifier_dir,
        "segmenter_dir": segmenter_dir,
    }


@pytest.fixture(scope="module")
def served(exported):
    """Waits for the subprocesses; returns their exit codes and output, and the loader's
    named outputs and report."""
    root, results = exported["root"], {}
    for name, proc in exported["procs"].items():
        proc.wait(timeout=300)
        results[name] = (proc.returncode, (root / f"{name}.out").read_text(),
                         (root / f"{name}.err").read_text())
    rc, out, err = results["loader"]
    assert rc == 0, err[-3000:]
    with np.load(root / "served.npz") as arrays:
        outputs = {k: arrays[k] for k in arrays.files}
    return {"outputs": outputs, "report": json.loads(out.strip().splitlines()[-1]),
            "cli": results, "cli_out": root / "cli_out"}


# ----------------------------------------------------------- export in this process
# (first, so the subprocesses started by `exported` run during the next tests)


def test_metadata_describes_the_export(exported):
    with open(os.path.join(exported["classifier_dir"], METADATA_FILENAME)) as f:
        meta = json.load(f)
    assert meta["task"] == "classification" and meta["version"] == 1
    assert meta["num_classes"] == 10 and meta["class_names"] == CLASSES
    assert meta["image_size"] == [32, 32] and meta["dataset"] == "cifar10"
    assert meta["preprocessing"]["mean"] == list(CIFAR_MEAN)
    assert meta["preprocessing"]["std"] == list(CIFAR_STD)
    assert meta["preprocessing"]["input_scale"] == 255.0
    assert meta["library_versions"]["lps_keras"]
    assert meta["signatures"]["serving_float"]["inputs"]["images"]["dtype"] == "float32"
    with open(os.path.join(exported["segmenter_dir"], METADATA_FILENAME)) as f:
        seg = json.load(f)
    assert seg["task"] == "segmentation" and seg["image_size"] == [None, None]
    assert seg["dataset"] is None  # not given
    assert set(seg["signatures"]["serving_default"]["outputs"]) == {"logits", "masks"}


def test_layout_is_name_slash_version(exported):
    assert exported["classifier_dir"].endswith(os.path.join("models", "cifar", "1"))
    for version_dir in (exported["classifier_dir"], exported["segmenter_dir"]):
        listing = os.listdir(version_dir)
        assert {"saved_model.pb", "variables", METADATA_FILENAME} <= set(listing)
        assert os.listdir(os.path.dirname(version_dir)) == ["1"]


# ------------------------------------------------------------------------------ versioning


@pytest.fixture(scope="module")
def tiny():
    return _tiny_classifier()


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _created(version_dir):
    with open(os.path.join(version_dir, METADATA_FILENAME)) as f:
        return json.load(f)


def test_versions_increment_and_overwrite(tiny, tmp_path):
    first = export_saved_model(tiny, tmp_path)
    second = export_saved_model(tiny, str(tmp_path))
    assert first == os.path.join(str(tmp_path), "tiny", "1")
    assert second == os.path.join(str(tmp_path), "tiny", "2")
    # Same permissions as any new directory (a 0700 temp dir would lock out a server).
    (tmp_path / "plain").mkdir()
    assert _mode(first) == _mode(tmp_path / "plain")
    # Gaps are fine: the next version follows the largest one.
    assert export_saved_model(tiny, tmp_path, version=7).endswith(os.path.join("tiny", "7"))
    assert export_saved_model(tiny, tmp_path).endswith(os.path.join("tiny", "8"))

    open(os.path.join(first, "marker"), "w").close()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_saved_model(tiny, tmp_path, version=1)
    assert os.path.exists(os.path.join(first, "marker"))  # untouched

    replaced = export_saved_model(tiny, tmp_path, version=1, overwrite=True,
                                  class_names=["a", "b", "c"])
    assert replaced == first
    assert not os.path.exists(os.path.join(first, "marker"))
    assert _created(first)["class_names"] == ["a", "b", "c"]
    assert _listing(tmp_path / "tiny") == ["1", "2", "7", "8"]  # no leftovers
    assert _mode(first) == _mode(tmp_path / "plain")


def test_find_export_recognises_the_same_weights(tmp_path):
    from lps_keras.export import find_export, weights_fingerprint

    model = _tiny_classifier()
    fingerprint = weights_fingerprint(model)
    assert find_export(tmp_path, "tiny", fingerprint) is None  # nothing exported yet
    path = export_saved_model(model, tmp_path)
    assert _created(path)["weights_sha256"] == fingerprint
    assert find_export(tmp_path, "tiny", fingerprint) == path
    assert find_export(tmp_path, "other", fingerprint) is None
    # One changed weight is another model.
    kernel = model.weights[0]
    kernel.assign(kernel.numpy() + np.float32(1e-7) * (kernel.numpy() == kernel.numpy()))
    assert weights_fingerprint(model) != fingerprint
    assert find_export(tmp_path, "tiny", weights_fingerprint(model)) is None
    # A damaged metadata file is skipped, not fatal.
    (tmp_path / "tiny" / "1" / METADATA_FILENAME).write_text("{")
    assert find_export(tmp_path, "tiny", fingerprint) is None


def test_name_and_version_zero(tiny, tmp_path):
    path = export_saved_model(tiny, tmp_path, name="served", version=0)
    assert path == os.path.join(str(tmp_path), "served", "0")
    assert export_saved_model(tiny, tmp_path, name="served").endswith("1")


# ------------------------------------------------------------------------------ atomicity


@pytest.mark.parametrize("crash", [RuntimeError, KeyboardInterrupt])
def test_crash_inside_save_leaves_no_version(tiny, tmp_path, monkeypatch, crash):
    export_saved_model(tiny, tmp_path)
    before = _created(tmp_path / "tiny" / "1")
    written_to = []

    def crashing_save(obj, export_dir, **kwargs):
        written_to.append(export_dir)
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise crash("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crashing_save)
    with pytest.raises(crash, match="disk full"):
        export_saved_model(tiny, tmp_path)
    # It wrote into a hidden, non-integer sibling, now removed.
    assert os.path.basename(written_to[0]).startswith(".2.tmp-")
    assert _listing(tmp_path / "tiny") == ["1"]
    assert _created(tmp_path / "tiny" / "1") == before


def test_version_appears_only_when_complete(tiny, tmp_path, monkeypatch):
    real_save = tf.saved_model.save
    final = tmp_path / "tiny" / "1"

    def spying_save(obj, export_dir, **kwargs):
        assert not final.exists()
        real_save(obj, export_dir, **kwargs)
        assert not final.exists()

    monkeypatch.setattr(tf.saved_model, "save", spying_save)
    export_saved_model(tiny, tmp_path)
    assert _listing(tmp_path / "tiny") == ["1"]
    assert (final / "saved_model.pb").exists() and (final / METADATA_FILENAME).exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_failed_rename_leaves_previous_versions(tiny, tmp_path, monkeypatch, overwrite):
    export_saved_model(tiny, tmp_path)
    before = _created(tmp_path / "tiny" / "1")
    real_replace = os.replace

    def failing_replace(src, dst):
        if ".tmp-" in os.path.basename(src):  # moving the finished export into place
            raise OSError("simulated crash during rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    version = 1 if overwrite else None
    with pytest.raises(OSError, match="simulated crash"):
        export_saved_model(tiny, tmp_path, version=version, overwrite=overwrite)
    monkeypatch.undo()
    # No new version, no temporary or set-aside directory, old version intact.
    assert _listing(tmp_path / "tiny") == ["1"]
    assert _created(tmp_path / "tiny" / "1") == before


# ------------------------------------------------------------------------ argument checks


def _tiny_bn_lps_classifier():
    """Conv, BatchNorm (the layer that failed on an empty batch), LPS, pool, dense."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = LPSDownsampling2D(hidden_channels=4, seed=0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x), name="tiny_bn")


@pytest.fixture(scope="module")
def tiny_bn_loaded(tmp_path_factory):
    model = _tiny_bn_lps_classifier()
    path = export_saved_model(model, tmp_path_factory.mktemp("tiny_bn"))
    return model, tf.saved_model.load(path)


@pytest.mark.parametrize("signature, dtype", [("serving_default", tf.uint8),
                                              ("serving_float", tf.float32)])
def test_empty_batch_in_process(tiny_bn_loaded, signature, dtype):
    model, loaded = tiny_bn_loaded
    fn = loaded.signatures[signature]
    out = fn(images=tf.zeros((0, 8, 8, 3), dtype))
    assert out["logits"].shape == (0, 3) and out["logits"].dtype == tf.float32
    assert out["probabilities"].shape == (0, 3) and out["probabilities"].dtype == tf.float32
    assert out["classes"].shape == (0,) and out["classes"].dtype == tf.int64
    # A non-empty batch is unaffected by the empty-batch path.
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    got = fn(images=tf.cast(tf.constant(images), dtype))["logits"].numpy()
    x = tf.cast(tf.cast(images, dtype), tf.float32) / 255.0
    np.testing.assert_allclose(got, to_numpy(model(x, training=False)), atol=1e-5)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_float_images_are_rejected_in_process(tiny_bn_loaded, value):
    _, loaded = tiny_bn_loaded
    images = np.full((2, 8, 8, 3), 100.0, np.float32)
    images[0, 3, 3, 1] = value
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"`images` contains NaN or inf; every pixel must be a finite"):
        loaded.signatures["serving_float"](images=tf.constant(images))


def test_task_is_inferred_from_output_rank(tmp_path):
    inputs = keras.Input((None, None, 3))
    seg = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs), name="seg")
    path = export_saved_model(seg, tmp_path, image_size=(8, 12))
    meta = _created(path)
    assert meta["task"] == "segmentation" and meta["image_size"] == [8, 12]
    assert meta["signatures"]["serving_default"]["inputs"]["images"]["shape"] == [
        None, 8, 12, 3]
    serve = tf.saved_model.load(path).signatures["serving_float"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 12, 3)).astype("float32")
    out = serve(images=tf.constant(x))
    np.testing.assert_allclose(out["logits"].numpy(), to_numpy(seg(x / 255.0)), atol=1e-5)
    assert out["masks"].shape == (2, 8, 12)


def _rank3_model():
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Reshape((64, 3))(inputs))


def _gray_model():
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))


@pytest.mark.parametrize("kwargs, match", [
    ({"version": -1}, "non-negative int"),
    ({"version": 1.5}, "non-negative int"),
    ({"version": "2"}, "non-negative int"),
    ({"version": True}, "non-negative int"),
    ({"task": "detection"}, "`task` must be one of"),
    ({"task": "segmentation"}, "needs rank-4 logits"),
    ({"mean": (0.5, 0.5)}, "3 finite numbers"),
    ({"std": (1.0, 1.0, 1.0, 1.0)}, "3 finite numbers"),
    ({"mean": "abc"}, "3 finite numbers"),
    ({"std": 0.0}, "`std` must be positive"),
    ({"input_scale": 0}, "`input_scale` must be a positive number"),
    ({"image_size": (16, 16)}, "conflicts with the model's fixed input size"),
    ({"image_size": (8, -1)}, "`image_size` must be"),
    ({"class_names": ["a", "b"]}, "has 2 entries but the model predicts 3"),
    ({"name": "a/b"}, "`name` must be"),
    ({"name": ".hidden"}, "`name` must be"),
])
def test_invalid_arguments_raise_before_writing(tiny, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export_saved_model(tiny, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("builder, match", [
    (_gray_model, r"RGB images `\[batch, height, width, 3\]`"),
    (_rank3_model, "Cannot infer the task"),
])
def test_unsupported_models_raise(tmp_path, builder, match):
    with pytest.raises(ValueError, match=match):
        export_saved_model(builder(), tmp_path)


# ------------------------------------------- served outputs (fresh process, saved_model_cli)


def test_loaded_without_lps_keras(served):
    assert served["report"]["lps_keras_modules"] == []


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("signature", ["serving_default", "serving_float"])
def test_classifier_outputs_match_keras(served, exported, signature, batch):
    key = f"cls-{signature}-{batch}"
    expected = exported["cases"][key]
    got = {name: served["outputs"][f"{key}::{name}"]
           for name in ("logits", "probabilities", "classes")}
    assert got["logits"].dtype == np.float32 and got["logits"].shape == (batch, 10)
    assert np.ptp(expected) > 0.1  # logits are not degenerate
    np.testing.assert_allclose(got["logits"], expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(got["probabilities"],
                               to_numpy(keras.ops.softmax(expected)), atol=1e-6)
    assert got["classes"].dtype == np.int64
    np.testing.assert_array_equal(got["classes"], expected.argmax(-1))
    dtype = "uint8" if signature == "serving_default" else "float32"
    assert served["report"]["input_specs"][key] == [dtype, [None, 32, 32, 3]]


def test_fixed_size_model_rejects_other_sizes_with_clear_error(served):
    message = served["report"]["errors"]["cls-wrong-size"]
    assert "must have shape [batch, 32, 32, 3]" in message
    assert "[2 64 64 3]" in message  # the received shape


@pytest.mark.parametrize("signature", ["serving_default", "serving_float"])
def test_empty_batch_returns_empty_outputs(served, signature):
    key = f"cls-empty-{signature}"
    assert key not in served["report"]["errors"], served["report"]["errors"][key]
    out = {name: served["outputs"][f"{key}::{name}"]
           for name in ("logits", "probabilities", "classes")}
    assert out["logits"].shape == (0, 10) and out["logits"].dtype == np.float32
    assert out["probabilities"].shape == (0, 10) and out["probabilities"].dtype == np.float32
    assert out["classes"].shape == (0,) and out["classes"].dtype == np.int64


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_non_finite_float_images_are_rejected(served, bad):
    message = served["report"]["errors"][f"cls-{bad}"]
    assert "`images` contains NaN or inf" in message


@pytest.mark.parametrize("size", SEG_SIZES)
def test_segmenter_logits_and_masks_match_keras_at_two_sizes(served, exported, size):
    key = f"seg-{size}"
    expected = exported["cases"][key]
    logits = served["outputs"][f"{key}::logits"]
    masks = served["outputs"][f"{key}::masks"]
    assert logits.shape == (2, size, size, 5) and masks.shape == (2, size, size)
    assert masks.dtype == np.int64
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(masks, logits.argmax(-1))
    # Pixels whose two best classes are closer than float32 noise may flip; none others.
    top2 = np.sort(expected, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-4
    np.testing.assert_array_equal(masks[clear], expected.argmax(-1)[clear])
    # Dynamic-size model: both sizes went through one signature with free H and W.
    assert served["report"]["input_specs"][key] == ["uint8", [None, None, None, 3]]


# -------------------------------------------------------------------------- saved_model_cli


def test_saved_model_cli_show_lists_both_signatures(served):
    if "show" not in served["cli"]:
        pytest.skip("saved_model_cli is not installed")
    rc, out, err = served["cli"]["show"]
    assert rc == 0, err[-3000:]
    blocks = {b.split("'", 1)[0]: b for b in out.split("signature_def['")[1:]}
    for signature, dtype in (("serving_default", "DT_UINT8"), ("serving_float", "DT_FLOAT")):
        block = blocks[signature]
        inputs = block.split("inputs['images'] tensor_info:")[1].split("name:")[0]
        assert f"dtype: {dtype}" in inputs
        assert "shape: (-1, 32, 32, 3)" in inputs
        for name, out_dtype in (("logits", "DT_FLOAT"), ("probabilities", "DT_FLOAT"),
                                ("classes", "DT_INT64")):
            assert re.search(rf"outputs\['{name}'\] tensor_info:\s+dtype: {out_dtype}\b", block)
        assert "tensorflow/serving/predict" in block


def test_saved_model_cli_run_serves_named_outputs(served, exported):
    if "run" not in served["cli"]:
        pytest.skip("saved_model_cli is not installed")
    rc, out, err = served["cli"]["run"]
    assert rc == 0, err[-3000:]
    for name in ("logits", "probabilities", "classes"):
        assert f"Result for output key {name}" in out
    # TF1-style loading (as TF Serving does) restores the same weights.
    expected = to_numpy(exported["classifier"](_normalise(np.zeros((2, 32, 32, 3), np.uint8)),
                                               training=False))
    np.testing.assert_allclose(np.load(served["cli_out"] / "logits.npy"), expected,
                               atol=1e-5, rtol=1e-5)


_ASSET_READER = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
out = {"preprocessing": json.load(open(loaded.preprocessing_file.asset_path.numpy().decode())),
       "class_names": open(loaded.class_names_file.asset_path.numpy().decode()).read()
       if hasattr(loaded, "class_names_file") else None,
       "modules": [m for m in sys.modules if m.startswith("lps_keras")]}
print(json.dumps(out))
"""


@pytest.mark.parametrize("class_names", [["ant", "bee", "cat"], None])
def test_class_names_and_preprocessing_travel_inside_the_saved_model(tmp_path, class_names):
    model = _tiny_classifier()
    path = export_saved_model(model, tmp_path / "exports", name="clf", mean=(0.5, 0.4, 0.3),
                              std=(0.2, 0.25, 0.3), class_names=class_names)
    # Only the SavedModel directory's own files (as a server would copy them).
    moved = tmp_path / "copied"
    shutil.copytree(path, moved)
    os.remove(moved / "export_metadata.json")
    result = subprocess.run([sys.executable, "-c", _ASSET_READER, str(moved)],
                            capture_output=True, text=True, timeout=300, check=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["modules"] == []
    pre = found["preprocessing"]
    assert pre["mean"] == pytest.approx([0.5, 0.4, 0.3])
    assert pre["std"] == pytest.approx([0.2, 0.25, 0.3])
    assert pre["input_scale"] == 255.0 and pre["task"] == "classification"
    assert found["class_names"] == ("ant\nbee\ncat\n" if class_names else None)
