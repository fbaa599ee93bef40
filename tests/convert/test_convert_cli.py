"""`python -m lps_keras.convert` in a subprocess on the official APS ResNet-20 checkpoint."""

import os
import subprocess
import sys

import keras
import numpy as np

from tests.convert._official import APS_CKPT, decompress, load_npz, nhwc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "lps_keras.convert", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_writes_a_keras_file_with_the_official_logits(tmp_path):
    ckpt = decompress(APS_CKPT, tmp_path)
    out = tmp_path / "aps.keras"
    saved = tmp_path / "export"
    result = _run("--checkpoint", ckpt, "--output", str(out), "--saved_model", str(saved))
    assert result.returncode == 0, result.stderr[-2000:]
    data = load_npz("aps_resnet20_cifar10_circular_f3_eval.npz")
    model = keras.saving.load_model(str(out))
    logits = np.asarray(model(nhwc(data["input"]), training=False))
    assert np.abs(logits - data["output"]).max() <= 1e-5 * np.abs(data["output"]).max()
    # The SavedModel loads in a separate process.
    code = ("import sys, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
            "print(sorted(m.signatures))")
    found = [p for p, _, files in os.walk(saved) if "saved_model.pb" in files]
    assert found, os.listdir(saved)
    check = subprocess.run([sys.executable, "-c", code, found[0]], capture_output=True,
                           text=True, timeout=600,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert check.returncode == 0, check.stderr[-2000:]
    assert "serving_default" in check.stdout


def test_cli_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = _run("--checkpoint", str(bad), "--output", str(tmp_path / "x.keras"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "bad.pt" in lines[0]
