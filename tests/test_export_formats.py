"""TFLite (builtin ops) and ONNX exports: same outputs and classes as Keras, still invariant
(classifiers) or equivariant (segmenters, U-Nets) under circular shifts.

ONNX keeps the float64 selection, so shifted inputs give bit-identical (rolled) outputs;
TFLite selects in float32 (see `lps_keras.export_formats`), so the tolerance there covers
float32 rounding. The README ("TFLite and ONNX exports") lists measured differences.
"""

import itertools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lps_keras.export_formats import export_onnx, export_tflite
from lps_keras.layers import APSDownsampling2D
from lps_keras.layers.downsampling import _nan_to_neg_inf, argmax
from lps_keras.models import deeplabv3plus, resnet, unet
from tests.helpers import calibrate_batchnorm, natural_images

ATOL = 1e-4
SEGMENTER_ATOL = 2e-4  # deeper graph, logits summed over more layers
SHIFTS = [(0, 1), (1, 0), (3, 5), (16, 16), (31, 30)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _images(num, size, seed):
    return natural_images(num, size, 3, seed) * 255.0  # raw pixels, input_scale 255


def _classifier():
    keras.utils.set_random_seed(3)
    model = resnet(20, num_classes=10, input_shape=(32, 32, 3), stem="cifar",
                   downsampling="lps")
    calibrate_batchnorm(model, natural_images(16, 32, 3, seed=7))
    return model


def _segmenter():
    keras.utils.set_random_seed(4)
    model = deeplabv3plus("resnet18", num_classes=3, input_shape=(64, 64, 3),
                          downsampling="lps", upsampling="lpu", aspp_filters=16,
                          decoder_filters=16, low_level_filters=8, logits_channels=8)
    calibrate_batchnorm(model, natural_images(8, 64, 3, seed=8))
    return model


def _runner(fmt, model, path, **options):
    """Exports `model` to `fmt` and returns images -> {output name: numpy array}."""
    if fmt == "tflite":
        export_tflite(model, path, **options)
        with open(path, "rb") as f:
            assert b"Flex" not in f.read()  # no Select TF ops: builtins only
        interpreter = tf.lite.Interpreter(
            model_path=path,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN)
        runner = interpreter.get_signature_runner()
        return lambda x: runner(images=np.asarray(x, np.float32))
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    export_onnx(model, path, **options)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert [i.name for i in session.get_inputs()] == ["images"]
    return lambda x: dict(zip(names, session.run(None, {"images": np.asarray(x, np.float32)}),
                              strict=True))


def _roll(x, shift):
    return np.roll(x, shift, axis=(1, 2))


def _exported_against_keras(fmt, model, path, x, names, atol, scale=255.0, **options):
    """Exports `model` to `fmt` and runs it on the raw inputs `x` (`scale`: the model's
    input scale); checks the output names, and the first of them (`logits`/`outputs`)
    against Keras within `atol`. Returns `(run, outputs, keras_outputs)`."""
    run = _runner(fmt, model, path, **options)
    expected = model(x / scale, training=False).numpy()
    out = run(x)
    assert sorted(out) == sorted(names)
    diff = np.abs(out[names[0]] - expected).max()
    assert diff < atol, f"{fmt}: max |{names[0]} - keras| = {diff}"
    return run, out, expected


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_classifier_matches_keras_and_stays_invariant(fmt, tmp_path):
    x = _images(6, 32, seed=11)
    run, out, keras_logits = _exported_against_keras(
        fmt, _classifier(), str(tmp_path / f"model.{fmt}"), x,
        ("logits", "classes", "probabilities"), ATOL)
    assert out["classes"].dtype == np.int64 and out["classes"].shape == (6,)
    np.testing.assert_array_equal(out["classes"], keras_logits.argmax(-1))
    np.testing.assert_allclose(out["probabilities"], tf.nn.softmax(keras_logits).numpy(),
                               atol=1e-5)
    for shift in SHIFTS:
        shifted = run(_roll(x, shift))
        np.testing.assert_array_equal(shifted["classes"], out["classes"], err_msg=str(shift))
        _check_shifted_logits(fmt, shifted["logits"], out["logits"], shift)


def _check_shifted_logits(fmt, shifted, expected, shift):
    """ONNX keeps float64 selection and pooling: bitwise equal. TFLite: float32 rounding."""
    if fmt == "onnx":
        np.testing.assert_array_equal(shifted, expected, err_msg=str(shift))
    else:
        diff = np.abs(shifted - expected).max()
        assert diff < ATOL, f"{fmt} shift {shift}: max |logits diff| = {diff}"


def _near_tie(logits, gap=1e-3):
    top2 = np.sort(logits, axis=-1)[..., -2:]
    return (top2[..., 1] - top2[..., 0]) < gap


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_segmenter_matches_keras_and_stays_equivariant(fmt, tmp_path):
    x = _images(2, 64, seed=12)
    run, out, keras_logits = _exported_against_keras(
        fmt, _segmenter(), str(tmp_path / f"seg.{fmt}"), x, ("logits", "masks"),
        SEGMENTER_ATOL)
    assert out["masks"].dtype == np.int64 and out["masks"].shape == (2, 64, 64)
    # Masks agree exactly except where the two best classes are within float rounding.
    differ = out["masks"] != keras_logits.argmax(-1)
    assert not np.any(differ & ~_near_tie(keras_logits))
    for shift in SHIFTS[:3]:
        shifted = run(_roll(x, shift))
        expected = _roll(out["masks"], shift)
        differ = shifted["masks"] != expected
        assert not np.any(differ & ~_near_tie(_roll(out["logits"], shift))), shift
        _check_shifted_logits(fmt, shifted["logits"], _roll(out["logits"], shift), shift)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("downsampling", ["aps", "lps"])
def test_unet_matches_keras_and_stays_equivariant(fmt, downsampling, tmp_path):
    keras.utils.set_random_seed(5)
    model = unet((32, 32, 1), channels=(4, 8, 16, 32), downsampling=downsampling)
    calibrate_batchnorm(model, natural_images(4, 32, 1, seed=9))
    x = natural_images(2, 32, 1, seed=13)  # model units: no scaling for regression
    run, out, _ = _exported_against_keras(fmt, model, str(tmp_path / f"unet.{fmt}"), x,
                                          ("outputs",), ATOL, scale=1.0, task="regression")
    assert out["outputs"].shape == (2, 32, 32, 1)
    for shift in SHIFTS:
        _check_shifted_logits(fmt, run(_roll(x, shift))["outputs"], _roll(out["outputs"], shift),
                              shift)


def test_keras_own_onnx_export_runs_in_onnxruntime_and_stays_invariant(tmp_path):
    # The float64 global pool is a sum and a division, not an ONNX GlobalAveragePool
    # (which onnxruntime has for float32 only), so Keras' exporter works too.
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    model = _classifier()
    path = str(tmp_path / "keras.onnx")
    model.export(path, format="onnx", verbose=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = natural_images(4, 32, 3, seed=1)
    logits = session.run(None, {name: x})[0]
    np.testing.assert_allclose(logits, model(x, training=False).numpy(), atol=ATOL)
    for shift in SHIFTS[:3]:
        np.testing.assert_array_equal(session.run(None, {name: _roll(x, shift)})[0], logits)


def test_argmax_equals_keras_argmax_in_every_mode():
    """The mask-based selection argmax gives `ops.argmax`'s index (its -0.0 and subnormal
    handling included), in eager, graph and XLA, and its graph has no bit operations."""
    specials = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0, 1e-40, -1e-40, 5e-324,
                -5e-324, 1e-310, -1e-310, np.finfo(np.float32).tiny, 3.0]
    rows = np.array(list(itertools.product(specials, repeat=3)))
    rng = np.random.default_rng(0)
    rows = np.concatenate([rows, np.round(rng.normal(size=(500, 3)), 1)])
    for dtype in ("float16", "float32", "float64"):
        scores = tf.cast(tf.constant(rows), dtype)
        expected = keras.ops.argmax(_nan_to_neg_inf(scores), axis=-1).numpy()
        for fn in (argmax, tf.function(argmax), tf.function(argmax, jit_compile=True)):
            np.testing.assert_array_equal(fn(scores).numpy(), expected, err_msg=dtype)
    graph = tf.function(argmax).get_concrete_function(
        tf.TensorSpec([None, 4], tf.float32)).graph
    ops = {op.type for op in graph.get_operations()}
    assert not ops & {"Bitcast", "BitwiseAnd"}, ops


def test_tflite_needs_a_fixed_size(tmp_path):
    model = resnet(20, num_classes=10, input_shape=(None, None, 3), stem="cifar",
                   downsampling="aps")
    with pytest.raises(ValueError, match="fixed image size.*image_size"):
        export_tflite(model, str(tmp_path / "m.tflite"))
    assert not os.path.exists(tmp_path / "m.tflite")


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "lps_keras.export_formats", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_cli_exports_a_run_directory_with_its_dataset_normalisation(tmp_path):
    from lps_keras.data import dataset_info

    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    y = APSDownsampling2D(stride=2)(y)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(y))
    model = keras.Model(inputs, outputs)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text('{"data": {"name": "cifar10"}}')
    output = tmp_path / "out" / "model.tflite"
    result = _cli(f"--model={run_dir}", "--format=tflite", f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    runner = tf.lite.Interpreter(model_path=str(output)).get_signature_runner()
    x = _images(2, 16, seed=1)
    info = dataset_info("cifar10")
    expected = model((x / 255.0 - np.asarray(info.mean)) / np.asarray(info.std),
                     training=False).numpy()
    np.testing.assert_allclose(runner(images=x)["logits"], expected, atol=ATOL)


def test_cli_exports_a_unet_run_directory_as_regression(tmp_path):
    # The run's dataset (synthetic_mri) makes the task regression: without it a 1-channel
    # rank-4 output would be taken for segmentation logits.
    keras.utils.set_random_seed(6)
    model = unet((16, 16, 1), channels=(4, 8, 16), downsampling="aps")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text('{"data": {"name": "synthetic_mri"}}')
    output = tmp_path / "unet.tflite"
    result = _cli(f"--model={run_dir}", "--format=tflite", f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    runner = tf.lite.Interpreter(model_path=str(output)).get_signature_runner()
    x = natural_images(2, 16, 1, seed=2)
    out = runner(images=x)
    assert sorted(out) == ["outputs"]
    np.testing.assert_allclose(out["outputs"], model(x, training=False).numpy(), atol=ATOL)


def test_cli_reports_a_missing_model_without_traceback(tmp_path):
    result = _cli(f"--model={tmp_path / 'missing.keras'}", "--format=onnx",
                  f"--output={tmp_path / 'm.onnx'}")
    assert result.returncode == 2
    assert "error: No model file at" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "m.onnx")
