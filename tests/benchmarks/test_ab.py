"""The A/B command against a git revision. No speed is asserted, only that both versions
were built from their own code and every case was timed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from benchmarks import ab

REPO = Path(__file__).resolve().parents[2]


def _run(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "benchmarks.ab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_extracted_baseline_imports_as_its_own_package(tmp_path):
    package = ab.extract_baseline("HEAD", str(tmp_path))
    try:
        assert package.__name__ == "lps_keras_baseline"
        assert Path(package.__file__).is_relative_to(tmp_path)
        layer = package.layers.APSDownsampling2D(2)
        assert type(layer).__module__.startswith("lps_keras_baseline.")
        # Registered for Keras apart from the working tree's classes.
        assert keras.saving.get_registered_name(type(layer)) == \
            "lps_keras_baseline>APSDownsampling2D"
    finally:
        sys.path.remove(str(tmp_path))


def test_ab_run_times_both_versions(tmp_path):
    output = tmp_path / "ab.json"
    result = _run(["--baseline=HEAD", "--layers=aps", "--models=", "--compilers=graph",
                   "--repeats=1", "--warmup=1", f"--output={output}"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = json.loads(output.read_text())["records"]
    assert len(records) == len(ab.LAYER_SHAPES) * 2  # shapes x passes
    for r in records:
        assert r["baseline_ms"] > 0 and r["current_ms"] > 0
        assert r["ratio"] == pytest.approx(r["current_ms"] / r["baseline_ms"])


def test_unknown_revision_is_one_clear_message():
    result = _run(["--baseline=no-such-revision", "--layers=aps", "--models="])
    assert result.returncode != 0
    assert "--baseline=no-such-revision" in result.stderr
    assert "Traceback" not in result.stderr
