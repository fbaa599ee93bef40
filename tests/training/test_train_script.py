"""End-to-end runs of train.py in subprocesses: the default job, resume, MirroredStrategy."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from lps_keras.rundir import RunDirectory

REPO = Path(__file__).resolve().parents[2]

# A reduced default run: same code path, a few small steps (XLA off: compiling it costs
# more than these steps; the default-run test keeps it on).
TINY = [
    "--config.data.num_train_examples=128", "--config.data.num_eval_examples=64",
    "--config.train.batch_size=32", "--config.eval.batch_size=32",
    "--config.train.jit_compile=False",
]


def _env(checksum=False):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.pop("LPS_KERAS_WEIGHTS_CHECKSUM", None)
    if checksum:  # every process prints its weights checksum (hidden from users otherwise)
        env["LPS_KERAS_WEIGHTS_CHECKSUM"] = "1"
    return env


def _train(args, timeout=480, checksum=False, **kwargs):
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *args],
                            capture_output=True, text=True, env=_env(checksum),
                            timeout=timeout,
                            cwd=str(kwargs.get("cwd", REPO)), check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _history(workdir):
    return RunDirectory(workdir).load_history()


def test_reduced_default_run_trains_evaluates_and_exports(tmp_path):
    workdir = tmp_path / "run"
    result = _train([f"--workdir={workdir}", f"--config.export.dir={tmp_path / 'exports'}",
                     "--config.train.epochs=2", *TINY, "--config.train.jit_compile=True"])
    summary = [line for line in result.stdout.splitlines() if line.startswith("Test (")]
    assert len(summary) == 1, result.stdout[-2000:]
    assert summary[0].startswith("Test (64 images): accuracy ")
    assert "| circular consistency 100.00% | standard consistency " in summary[0]
    assert "weights_checksum" not in result.stdout  # a debug line, not for users
    results = json.loads((workdir / "results.json").read_text())
    assert results["circular_consistency"] == 100.0  # the guarantee, even after 2 epochs
    assert 0.0 <= results["standard_consistency"] <= 100.0
    assert 0.0 <= results["accuracy"] <= 100.0 and results["units"] == "percent (0-100)"
    assert results["protocol"] == "cifar" and results["num_examples"] == 64
    assert [h["epoch"] for h in _history(workdir)] == [1, 2]
    # Training accuracy in percent too: chance is 10%, so a fraction (<= 1) is the old unit.
    assert all(1.0 < h["accuracy"] <= 100.0 for h in results["history"])
    config = json.loads((workdir / "config.json").read_text())
    assert config["train"]["epochs"] == 2 and config["model"]["downsampling"] == "lps"
    version = Path(results["saved_model"])
    assert version.parent.parent == tmp_path / "exports" and version.name == "1"
    assert (version / "saved_model.pb").exists()
    assert list((workdir / "tensorboard").iterdir())
    model = keras.saving.load_model(workdir / "model.keras")
    assert model.name == "resnet20_lps"


def test_killed_run_resumes_from_last_completed_epoch(tmp_path):
    workdir = tmp_path / "run"
    args = [str(REPO / "train.py"), f"--workdir={workdir}", "--config.train.epochs=3",
            "--config.export.enabled=False", *TINY]
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), cwd=str(REPO))
    checkpoint_state = workdir / "checkpoints" / "checkpoint"
    deadline = time.time() + 400
    try:
        while not checkpoint_state.exists():  # epoch 1 is complete once it is checkpointed
            assert proc.poll() is None, "training ended before it could be interrupted"
            assert time.time() < deadline, "epoch 1 did not finish in time"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = [h["epoch"] for h in _history(workdir)]
    assert done and done[-1] < 3, "the run was not interrupted before its end"

    result = _train(args[1:])
    assert "Resuming from" in result.stdout
    assert [h["epoch"] for h in _history(workdir)] == [1, 2, 3]
    assert (workdir / "model.keras").exists()
    states = (workdir / "checkpoints" / "checkpoint").read_text()
    assert "ckpt-3" in states


def _checksum(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("weights_checksum=")]
    assert lines, stdout[-2000:]
    return float(lines[-1].split()[0].split("=")[1])


def test_mirrored_matches_single_device(tmp_path):
    # Two small steps: replicas sum gradients in another order than one device, and
    # training amplifies that float32 noise (about 4e-5 after two steps at learning rate
    # 0.01, measured), so the rate is small; a real error (wrong loss scaling, unsynced
    # BatchNorm, weight decay applied per replica) moves weights by 1e-4 or more here.
    common = ["--config.train.epochs=1", "--config.train.steps_per_epoch=2",
              "--config.train.learning_rate=0.002",
              "--config.export.enabled=False", "--config.data.augment=none",
              "--config.model.downsampling=aps", "--config.model.sync_bn=True", *TINY]
    single = _train([f"--workdir={tmp_path / 'single'}", "--strategy=default", *common],
                    checksum=True)
    mirrored = _train([f"--workdir={tmp_path / 'mirrored'}", "--strategy=mirrored",
                       "--cpu_devices=2", *common], checksum=True)
    assert "2 replica(s)" in mirrored.stdout
    a = keras.saving.load_model(tmp_path / "single" / "model.keras")
    b = keras.saving.load_model(tmp_path / "mirrored" / "model.keras")
    for wa, wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(wa),
                                   keras.ops.convert_to_numpy(wb), rtol=1e-4, atol=2e-5,
                                   err_msg=wa.path)
    assert _checksum(single.stdout) == pytest.approx(_checksum(mirrored.stdout), rel=1e-5)


def _train_fails(args, cwd=REPO):
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *args],
                            capture_output=True, text=True, env=_env(), timeout=300,
                            cwd=str(cwd), check=False)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    return result


def test_setting_errors_are_one_message_without_traceback(tmp_path):
    workdir = tmp_path / "run"
    result = _train_fails([f"--workdir={workdir}", "--config.eval.split=tset", *TINY])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "train.py: error: config.eval.split: 'tset' is not a split of synthetic_shapes "
        "(splits: train, validation, test); set it to one of those.")
    assert not (workdir / "config.json").exists()
    result = _train_fails([f"--workdir={workdir}", "--cpu_devices=0", *TINY])
    assert "--cpu_devices=0: 0 is not a positive integer" in result.stderr


def test_a_second_run_into_a_busy_run_directory_is_refused(tmp_path):
    workdir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom lps_keras.rundir import RunDirectory\n"
         "with RunDirectory(sys.argv[1]).lock():\n    print('locked', flush=True)\n"
         "    time.sleep(600)\n", str(workdir)],
        stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = _train_fails([f"--workdir={workdir}", *TINY])
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2
    assert f"train.py: error: {workdir} is in use by another training process (pid " \
        f"{holder.pid} on" in result.stderr
    assert sorted(os.listdir(workdir)) == [".lock"]  # nothing of the second run
