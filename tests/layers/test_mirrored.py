"""MirroredStrategy over two logical CPU devices (run in a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.tf_only  # tf.distribute.MirroredStrategy


def test_replicas_draw_different_noise_and_agree_at_inference():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("mirrored_worker.py"))],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    r0, r1 = (np.array(p) for p in report["probs_step1"])
    np.testing.assert_allclose(r0.sum(1), 1.0, atol=1e-6)
    assert not np.allclose(r0, r1), "both replicas drew the same Gumbel noise"
    # The generator advances: the next step draws new noise on each replica.
    assert not np.allclose(r0, np.array(report["probs_step2"][0]))
    assert report["max_inference_diff"] < 1e-6
