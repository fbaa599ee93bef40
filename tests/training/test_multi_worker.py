"""MultiWorkerMirroredStrategy: two train.py worker processes on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_and_agree_on_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    args = [str(REPO / "train.py"), f"--workdir={tmp_path / 'run'}", "--strategy=multi_worker",
            "--config.train.epochs=1", "--config.train.steps_per_epoch=2",
            "--config.export.enabled=False", "--config.data.augment=none",
            "--config.model.downsampling=aps", "--config.model.sync_bn=True",
            "--config.data.num_train_examples=128",
            "--config.data.num_eval_examples=32", "--config.train.batch_size=32",
            "--config.eval.batch_size=32"]
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2",
                   LPS_KERAS_WEIGHTS_CHECKSUM="1",  # each worker prints its checksum
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                         "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env,
                                      cwd=str(REPO)))
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            outputs.append(out)
            assert proc.returncode == 0, out[-2000:] + err[-4000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    checksums = []
    for index, out in enumerate(outputs):
        line = next(line for line in out.splitlines() if line.startswith("weights_checksum="))
        value, worker = line.split()
        assert worker == f"worker={index}"
        checksums.append(float(value.split("=")[1]))
    # Same all-reduced updates and synchronised BatchNorm statistics on both workers.
    assert checksums[0] == pytest.approx(checksums[1], rel=1e-7)
    assert "2 replica(s)" in outputs[0]
    assert (tmp_path / "run" / "model.keras").exists()  # the chief finished the run
    assert not (tmp_path / "run" / ".worker1").exists()  # the other worker cleaned up
