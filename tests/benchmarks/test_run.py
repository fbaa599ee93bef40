"""The benchmark command on its tiny configuration. Numbers are not checked against any
speed (that would make the suite flaky): only that every case ran and was recorded."""

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import layer_cases, model_cases

REPO = Path(__file__).resolve().parents[2]


def _run(args, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_tiny_run_records_every_case_and_the_targets(tmp_path):
    output = tmp_path / "results" / "tiny.json"
    result = _run(["--tiny", "--repeats=1", "--warmup=1", f"--output={output}"], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Targets:" in result.stdout
    results = json.loads(output.read_text())
    assert {"tensorflow", "keras", "cpu", "cpu_count"} <= set(results["machine"])

    layers = results["layers"]
    assert len(layers) == len(layer_cases.LAYERS) * 2 * 2  # layers x compilers x passes
    assert all(r["seconds"] > 0 and "error" not in r for r in layers)
    for r in layers:
        if r["baseline"]:
            assert r["ratio"] > 0

    models = results["models"]
    assert {(r["mode"], r["compiler"]) for r in models} == {
        (mode, compiler) for mode in model_cases.MODES for compiler in ("graph", "xla")}
    macs = {r["mode"]: r["macs"] for r in models}
    # The polyphase modes run the conv before the downsampler at full resolution.
    assert macs["aps"] > macs["strided"] and macs["lps"] > macs["aps"]
    for r in models:
        assert r["train_images_per_s"] > 0 and r["infer_images_per_s"] > 0
        assert abs(r["mac_ratio"] - r["macs"] / macs["strided"]) < 1e-12
        assert r["train_peak_mib"] is None or r["train_peak_mib"] >= 0
    assert [t["met"] for t in results["targets"]][1] is None  # resnet18 was not run
    assert len(results["targets"]) == 4


def test_tiny_unet_run_trains_a_regression_step_per_mode(tmp_path):
    output = tmp_path / "unet.json"
    result = _run(["--tiny", "--suite=models", "--models=unet_tiny", "--compilers=graph",
                   "--repeats=1", "--warmup=1", f"--output={output}"], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    models = json.loads(output.read_text())["models"]
    assert [(r["model"], r["mode"]) for r in models] == [
        ("unet_tiny", mode) for mode in model_cases.MODES]
    assert all("error" not in r and r["train_images_per_s"] > 0 for r in models)
    macs = {r["mode"]: r["macs"] for r in models}
    # APS/LPS U-Nets upsample with a 2x2 conv at full resolution instead of a transposed
    # conv at half resolution; LPS adds its scorers.
    assert macs["lps"] > macs["aps"] > macs["strided"] == macs["blurpool"]
    assert all(r["input_size"] == 16 and r["batch"] == 2 for r in models)
    assert "unet_tiny" in result.stdout


def test_unknown_case_names_are_refused(tmp_path):
    result = _run(["--tiny", "--layers=aps,maxpool", f"--output={tmp_path / 'x.json'}"],
                  tmp_path)
    assert result.returncode != 0
    assert "maxpool" in result.stderr and "choose from" in result.stderr
    assert not (tmp_path / "x.json").exists()
