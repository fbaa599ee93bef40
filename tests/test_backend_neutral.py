"""The package root, layers, models, metrics and callbacks need no TensorFlow (README "Backends").

`tests/no_tensorflow_worker.py` runs in a fresh process with `KERAS_BACKEND=jax` and a
`sys.meta_path` finder that makes `import tensorflow` fail as if it were not installed; it
builds and runs an LPS ResNet, a DeepLabV3+ with LPU and an LPS U-Net, checks exact
(`==`) shift invariance/equivariance, a jitted fit step and a `.keras` round trip, and
asserts that no `tensorflow` module was ever imported.
"""

import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("jax", reason="the JAX backend comes with the `test` extra")

WORKER = pathlib.Path(__file__).with_name("no_tensorflow_worker.py")
ROOT = WORKER.parent.parent


@pytest.mark.slow
def test_import_and_models_without_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_ENABLE_X64="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-W", "error::UserWarning", str(WORKER)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.strip().splitlines()[-1] == "OK"
